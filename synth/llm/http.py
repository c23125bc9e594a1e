"""A direct transport for OpenAI-compatible chat endpoints (`transport: http`).

litellm costs the client about 4 ms of CPU per request (it builds every call in a worker
thread, then runs the OpenAI SDK's request and response transforms and its logging and
cost objects). Against a fast self-hosted endpoint (vLLM, an OpenAI-compatible proxy)
that CPU, not the server, sets the pace: on 2 cores a run tops out near 150 requests/s.
This transport posts the request with aiohttp and reads the JSON answer itself, for
0.4-0.8 ms a request (`bench/llm_throughput.py`). Everything else (cache, admission,
retries, structured output, cost from litellm's price map, the budget) stays in
`synth.llm.client`, shared by both transports.

It speaks only the Chat Completions wire format, so it serves only the providers whose
endpoints do: `openai/` and `hosted_vllm/`, with litellm's variables for where and who
(`OPENAI_BASE_URL` / `OPENAI_API_BASE` / `OPENAI_API_KEY`, `HOSTED_VLLM_API_BASE` /
`HOSTED_VLLM_API_KEY`) or the client's `api_base` / `api_key`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synth.errors import ConfigError, LLMResponseError, LLMTransientError
from synth.llm.retrying import retry_after
from synth.redaction import redact

TRANSPORTS = ("litellm", "http")


@dataclass(frozen=True, slots=True)
class Provider:
    base_env: tuple[str, ...]
    key_env: str
    default_base: str | None


PROVIDERS = {
    "openai": Provider(("OPENAI_BASE_URL", "OPENAI_API_BASE"), "OPENAI_API_KEY",
                       "https://api.openai.com/v1"),
    "hosted_vllm": Provider(("HOSTED_VLLM_API_BASE",), "HOSTED_VLLM_API_KEY", None),
}  # fmt: skip


def speaks_openai(model: str) -> bool:
    """Whether `model`'s provider serves the Chat Completions wire format."""
    return model.split("/", 1)[0] in PROVIDERS and "/" in model


@dataclass(frozen=True, slots=True)
class Answer:
    """What synth needs of one chat completion."""

    text: str
    input_tokens: int
    output_tokens: int
    finish_reason: str | None
    logprobs: Any  # OpenAI's `choices[0].logprobs`, as parsed JSON


class RefusedParam(LLMResponseError):
    """A 400 that names logprobs: an OpenAI-compatible endpoint without them (either
    transport raises it; the client then asks again without them)."""


class HTTPTransport:
    """One aiohttp session per event loop, its connection pool unbounded: admission is the
    Limiter's job, and a pool cap below it would queue requests where nobody counts them."""

    def __init__(self, *, api_base: str | None = None, api_key: str | None = None,
                 extra_headers: Mapping[str, str] | None = None,
                 secrets: list[str] | None = None) -> None:  # fmt: skip
        self.api_base = api_base
        self.api_key = api_key
        self.extra_headers = dict(extra_headers or {})
        self.secrets = list(secrets or [])
        self._session: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def chat(
        self, model: str, messages: list[dict[str, Any]], params: Mapping[str, Any],
        *, time_limit: float,
    ) -> Answer:  # fmt: skip
        """One chat completion; `time_limit` seconds for the whole exchange."""
        provider, name = model.split("/", 1)
        url, headers = self._endpoint(provider, model)
        body = json.dumps({"model": name, "messages": messages, **params})
        import aiohttp

        session = await self._open()
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=time_limit)
            ) as resp:
                raw = await resp.read()
                status, resp_headers = resp.status, resp.headers
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else "connection failed"
            detail = f"{kind}: {type(exc).__name__}: {exc}"
            raise LLMTransientError(self._text(model, detail)) from exc
        if status != 200:
            raise self._error(model, status, resp_headers, raw)
        try:
            choice = (data := json.loads(raw))["choices"][0]
            usage = data.get("usage") or {}
            return Answer(
                text=(choice.get("message") or {}).get("content") or "",
                input_tokens=int(usage.get("prompt_tokens") or 0),
                output_tokens=int(usage.get("completion_tokens") or 0),
                finish_reason=choice.get("finish_reason"),
                logprobs=choice.get("logprobs"),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            # A 200 whose body is not a chat completion: a proxy cut it off or replaced it.
            raise LLMTransientError(
                self._text(model, f"unreadable answer ({type(exc).__name__}): {raw[:200]!r}"),
                status=status,
            ) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals

    def _endpoint(self, provider: str, model: str) -> tuple[str, dict[str, str]]:
        spec = PROVIDERS[provider]
        base = self.api_base or next(
            (os.environ[v] for v in spec.base_env if os.environ.get(v)), spec.default_base
        )
        if not base:
            raise ConfigError(
                f"no endpoint for {model}",
                file="environment",
                path=spec.base_env[0],
                expected="the base URL of an OpenAI-compatible server",
                found="unset",
                fix=f"export {spec.base_env[0]}=http://host:8000/v1",
            )
        headers = {"Content-Type": "application/json", **self.extra_headers}
        key = self.api_key or os.environ.get(spec.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
            if key not in self.secrets:
                self.secrets.append(key)
        return base.rstrip("/") + "/chat/completions", headers

    async def _open(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            from importlib.metadata import version

            import aiohttp

            self._loop = loop
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                headers={"User-Agent": f"synth/{version('synth')}"},
            )
        return self._session

    def _text(self, model: str, detail: str) -> str:
        return redact(f"{model}: {detail}", self.secrets)

    def _error(self, model: str, status: int, headers: Mapping[str, str], raw: bytes) -> Exception:
        try:
            error = json.loads(raw).get("error") or {}
            message = str(error.get("message") if isinstance(error, dict) else error)
        except (ValueError, AttributeError):
            message = raw[:300].decode("utf-8", "replace")
        text = self._text(model, f"HTTP {status}: {message}")
        waited = retry_after(headers)
        if status == 429:
            return LLMTransientError(text, retry_after=waited, status=429)
        if status in (401, 403):
            return ConfigError(
                f"the provider refused the credentials for {model}",
                expected="a valid API key in the provider's environment variable",
                found=text,
                fix="set e.g. OPENAI_API_KEY / HOSTED_VLLM_API_KEY, or use local/smollm2",
            )
        if status == 404:
            return ConfigError(
                f"unknown model {model!r} or endpoint",
                expected="a model the server serves, at <api_base>/chat/completions",
                found=text,
                fix="check the model name and the base URL (it usually ends in /v1)",
            )
        if status >= 500 or status == 408:
            return LLMTransientError(text, retry_after=waited, status=status)
        if status == 400 and "logprob" in message.lower():
            return RefusedParam(text)
        return LLMResponseError(text)
