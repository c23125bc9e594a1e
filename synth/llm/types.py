"""The LLM seam's types: a `Completion`, the messages it answers, and the `LLM` protocol
that the run's client, the dry-run recorder and the scripted test fake all satisfy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Message = dict[str, Any]

_LOGPROB_POSITIONS = 32  # generated tokens whose logprobs are kept (and cached)


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer, with what lineage needs: who answered, from cache or not, at what cost.
    For a structured call, tokens and cost add up every re-ask. `logprobs`, when the call
    asked for them (`logprobs=True, top_logprobs=k`) and the provider gave them: for each
    of the first generated tokens, that token and then its top alternatives -> logprob."""

    text: str
    parsed: Any = None
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    latency_s: float = 0.0
    template_hash: str | None = None
    n_index: int = 0
    reasks: int = 0
    finish_reason: str | None = None
    max_tokens_raised_to: int | None = None  # a re-ask after a cut-off answer raised it
    logprobs: tuple[dict[str, float], ...] | None = None
    # The trace lines (`synth.llm.trace`) of the model calls behind this answer: one, or
    # one per attempt of a re-asked structured call, the answer's own last. Empty when the
    # run keeps no trace.
    call_ids: tuple[str, ...] = ()

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def lineage(self) -> dict[str, Any]:
        """The entry a step appends to `meta["llm_calls"]`."""
        out: dict[str, Any] = {
            "model": self.model,
            "template_hash": self.template_hash,
            "cached": self.cached,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "latency_s": round(self.latency_s, 4),
        }
        if self.n_index:
            out["n_index"] = self.n_index
        if self.reasks:
            out["reasks"] = self.reasks
        if self.max_tokens_raised_to:
            out["max_tokens_raised_to"] = self.max_tokens_raised_to
        if self.call_ids:
            out["call_id"] = self.call_ids[-1]  # where `synth show` finds prompt and answer
            if len(self.call_ids) > 1:
                out["call_ids"] = list(self.call_ids)
        return out


@runtime_checkable
class LLM(Protocol):
    """What a step, verifier or judge may ask of `ctx.llm`: one narrow call, and what the
    run needs to account for it. `model` is the run's default model (None: each call
    names its own); `returns_logprobs` says whether `logprobs=True` can be honoured."""

    model: str | None
    returns_logprobs: bool

    async def complete(
        self,
        messages: list[Message],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        n_index: int = 0,
        template_hash: str | None = None,
        **params: Any,
    ) -> Completion:
        """One answer. `schema` asks for JSON matching it (parsed into `.parsed`)."""
        ...

    def usage(self) -> dict[str, Any]:
        """Calls, tokens and cost so far (counts only, so resumed processes add up)."""
        ...

    async def aclose(self) -> None: ...


def logprobs_of(raw: Any) -> tuple[dict[str, float], ...] | None:
    """An OpenAI-shaped `choice.logprobs` (`{content: [{token, logprob, top_logprobs}]}`,
    as objects or dicts) as `Completion.logprobs`; None when the provider sent none."""
    content = _field(raw, "content")
    if not content:
        return None
    out = []
    for position in list(content)[:_LOGPROB_POSITIONS]:
        alts: dict[str, float] = {}
        for alt in [position, *(_field(position, "top_logprobs") or ())]:
            token, lp = _field(alt, "token"), _field(alt, "logprob")
            if isinstance(token, str) and isinstance(lp, int | float):
                alts.setdefault(token, float(lp))  # the sampled token first
        out.append(alts)
    return tuple(out)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
