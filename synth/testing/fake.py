"""`ScriptedLLM`: a fake model client with the real client's seam, for unit tests."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from synth.errors import LLMResponseError


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One call the fake received: what a test asserts on."""

    messages: list[dict[str, Any]]
    model: str | None
    schema: dict[str, Any] | None
    params: dict[str, Any]


class ScriptedLLM:
    """A fake LLM with the real client's seam (`complete`, `usage`, `aclose`).

    `script` is either a function `(messages, **params) -> str | dict` or a sequence of
    answers consumed in order (a str is the completion text; a dict is a parsed JSON
    answer; an exception instance is raised). With a schema, str answers are parsed and
    validated the way the real client does, so a step sees the same errors."""

    def __init__(
        self, script: Callable[..., Any] | Sequence[Any], *, model: str = "scripted"
    ) -> None:
        self._fn = script if callable(script) else None
        self._queue: collections.deque[Any] = collections.deque([] if callable(script) else script)
        self.model = model
        self.calls: list[ScriptedCall] = []

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        **params: Any,
    ) -> Any:
        from synth.llm import Completion
        from synth.structured import parse_answer

        self.calls.append(ScriptedCall(list(messages), model, schema, dict(params)))
        if self._fn is not None:
            answer = self._fn(messages, **params)
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
            model=model or self.model,
            input_tokens=sum(len(str(m.get("content", ""))) for m in messages) // 4,
            output_tokens=len(text) // 4,
            template_hash=params.get("template_hash"),
            n_index=int(params.get("n_index", 0)),
        )

    def usage(self) -> dict[str, Any]:
        return {"calls": len(self.calls), "cache_hits": 0, "cost_usd": 0.0}

    async def aclose(self) -> None:
        return None
