"""The one error tree. Third-party exceptions are wrapped once, at the boundary, `from exc`.

SynthError
├── ConfigError          bad recipe/template/verifier/CLI input: where, expected, found, fix
├── LLMError
│   ├── LLMTransientError  429, 5xx, timeouts, resets: retried by the LLM layer
│   │   └── LLMUnavailable   every retry failed: the endpoint is down; the run stops
│   ├── LLMResponseError   the model answered, but not usably (unparseable, schema-invalid)
│   └── BudgetExceeded     a cost or token cap was reached; the run stops cleanly
├── SandboxError         the sandbox itself failed (not a failing test: that is a Verdict)
└── SinkError            output could not be written or resumed
"""

from __future__ import annotations

from typing import Any


class SynthError(Exception):
    """Base of every error synth raises on purpose. The CLI prints it and exits 2."""

    exit_code = 2


class ConfigError(SynthError):
    """User input is wrong. The message names the file and JSON path, what was expected,
    what was found, and how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        expected: str | None = None,
        found: Any = None,
        fix: str | None = None,
    ) -> None:
        self.file, self.path, self.expected, self.found, self.fix = file, path, expected, found, fix
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or ""
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        lines = [f"{where}: {self.message}" if where else self.message]
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.found is not None:
            lines.append(f"  found:    {_short(self.found)}")
        if self.fix:
            lines.append(f"  fix:      {self.fix}")
        return "\n".join(lines)


class NotFound(ConfigError):
    """A file, template or prompt the configuration names does not exist. A loader that
    may look again from another base directory catches this, and only this."""


class LLMError(SynthError):
    """A model call failed."""


class LLMTransientError(LLMError):
    """Worth retrying: rate limits, server errors, timeouts, dropped connections."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status  # HTTP status when there was one (429 feeds the rate limiter)


class LLMUnavailable(LLMTransientError):
    """Every attempt at a call failed. That is about the endpoint, not the record: the run
    stops without writing the record (no step rejects it), and the same command resumes."""


class LLMResponseError(LLMError):
    """The model answered but the answer is unusable; never retried as a transport fault."""


class BudgetExceeded(LLMError):
    """A cost or token cap was reached. The run stops cleanly and the manifest says why.
    `reason` is the cap's name (`max_cost_usd` or `max_tokens`), the manifest's stop reason."""

    def __init__(self, message: str, *, reason: str = "max_cost_usd") -> None:
        super().__init__(message)
        self.reason = reason


class SandboxError(SynthError):
    """The sandbox could not run a job safely (a layer is missing, a probe failed)."""


class SinkError(SynthError):
    """Output could not be written, or an existing output directory cannot be resumed."""


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
