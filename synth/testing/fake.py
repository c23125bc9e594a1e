"""`ScriptedLLM`: a fake model client with the real client's seam, for unit tests."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from synth.errors import LLMResponseError
from synth.llm.types import Completion


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One call the fake received: what a test asserts on."""

    messages: list[dict[str, Any]]
    model: str | None
    schema: dict[str, Any] | None
    params: dict[str, Any]


class ScriptedLLM:
    """A fake LLM that satisfies the `LLM` protocol (`complete`, `usage`, `aclose`).

    `script` is either a function `(messages, **params) -> str | dict` or a sequence of
    answers consumed in order (a str is the completion text; a dict is a parsed JSON
    answer; an exception instance is raised). With a schema, str answers are parsed and
    validated the way the real client does, so a step sees the same errors."""

    def __init__(
        self, script: Callable[..., Any] | Sequence[Any], *, model: str = "scripted"
    ) -> None:
        self._fn = script if callable(script) else None
        self._queue: collections.deque[Any] = collections.deque([] if callable(script) else script)
        self.model: str | None = model
        self.returns_logprobs = False
        self.calls: list[ScriptedCall] = []

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        n_index: int = 0,
        template_hash: str | None = None,
        **params: Any,
    ) -> Completion:
        from synth.llm.structured import parse_answer

        seen = {**params, "n_index": n_index}  # what a test asserts on, like the real key
        if template_hash is not None:
            seen["template_hash"] = template_hash
        self.calls.append(ScriptedCall(list(messages), model, schema, seen))
        if self._fn is not None:
            answer = self._fn(messages, **seen)
        elif self._queue:
            answer = self._queue.popleft()
        else:
            raise LLMResponseError("ScriptedLLM ran out of scripted answers")
        if isinstance(answer, BaseException):
            raise answer
        text = answer if isinstance(answer, str) else json.dumps(answer)
        parsed = parse_answer(text, schema) if schema is not None else None
        return Completion(
            text=text,
            parsed=parsed,
            model=model or self.model or "",
            input_tokens=sum(len(str(m.get("content", ""))) for m in messages) // 4,
            output_tokens=len(text) // 4,
            template_hash=template_hash,
            n_index=n_index,
        )

    def usage(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "cache_hits": 0, "cost_usd": 0.0}

    async def aclose(self) -> None:
        return None
