"""Structured output: get JSON that matches a JSON Schema out of any model.

Where litellm says a model supports response schemas, the schema goes to the provider as
`response_format` (for `local/` models llama.cpp turns it into a grammar). Everywhere
else the model is told the schema, and the answer is extracted tolerantly: bare JSON,
JSON inside a code fence, or the first JSON value inside surrounding prose. Either way the
value is validated with jsonschema, and an invalid answer is re-asked with the validation
error, up to a limit. An answer cut off at `max_tokens` (finish_reason "length") would only
be cut off again, so its re-ask doubles `max_tokens`, up to `MAX_TOKENS_GROWTH` times the
step's. An answer that stays unusable is an `LLMResponseError`: a fault of the answer,
never retried as a transport fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from synth.errors import LLMResponseError

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript)?[ \t]*\n?(.*?)```", re.DOTALL)
_DECODER = json.JSONDecoder()

# call(messages, response_format, max_tokens): max_tokens None keeps the caller's own.
Call = Callable[[list[dict[str, Any]], dict[str, Any] | None, int | None], Awaitable[Any]]
MAX_TOKENS_GROWTH = 4  # a re-ask after a cut-off answer asks for at most 4x max_tokens


@dataclass(frozen=True, slots=True)
class Structured:
    """What the re-ask loop produced: the value, the completion that held it, how many
    re-asks it took, and the max_tokens it was finally asked with when a cut-off answer
    raised it (None when never raised)."""

    value: Any
    completion: Any
    reasks: int = 0
    max_tokens_raised_to: int | None = None


def instruction(schema: dict[str, Any]) -> str:
    if not schema:
        return "Answer with a single JSON value only: no prose, no code fences."
    return (
        "Answer with a single JSON value that matches this JSON Schema, and nothing else "
        "(no prose, no code fences):\n" + json.dumps(schema, separators=(",", ":"))
    )


def with_instruction(
    messages: list[dict[str, Any]], schema: dict[str, Any]
) -> list[dict[str, Any]]:
    """The messages with the JSON instruction added to the system message (or a new one)."""
    text = instruction(schema)
    out = [dict(m) for m in messages]
    for m in out:
        if m.get("role") == "system" and isinstance(m.get("content"), str):
            m["content"] = f"{m['content']}\n\n{text}"
            return out
    return [{"role": "system", "content": text}, *out]


def native_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-style `response_format` litellm translates for each provider."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer; ValueError (with why) when there is none."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(stripped):
        try:
            return json.loads(block.strip())
        except ValueError:
            continue
    first_error = "no JSON object or array in the answer"
    for i, ch in enumerate(stripped):
        if ch in "{[":
            try:
                value, _ = _DECODER.raw_decode(stripped, i)
                return value
            except ValueError as exc:
                if first_error.startswith("no JSON"):
                    first_error = f"invalid JSON: {exc}"
    raise ValueError(first_error)


def validation_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    if not schema:
        return []
    from synth.schema import errors

    return errors(value, schema)


def parse_answer(text: str, schema: dict[str, Any]) -> Any:
    """Extract and validate, or raise LLMResponseError saying what was wrong."""
    try:
        value = extract_json(text)
    except ValueError as exc:
        raise LLMResponseError(f"unparseable JSON answer: {exc}") from None
    problems = validation_errors(value, schema)
    if problems:
        raise LLMResponseError(f"answer does not match the schema: {'; '.join(problems[:3])}")
    return value


async def complete_structured(
    call: Call,
    messages: list[dict[str, Any]],
    schema: dict[str, Any],
    *,
    native: bool,
    reask_limit: int = 2,
    max_tokens: int | None = None,
) -> Structured:
    """The validated value of a structured call, re-asked until valid or out of re-asks.

    `call(messages, response_format, max_tokens)` is one plain model call (cached,
    rate-limited and retried by the client). Each re-ask is a new call whose messages carry
    the invalid answer and the error, so it is cached under its own key and a re-run
    replays it. `max_tokens` is the caller's, raised for a re-ask after a cut-off answer."""
    response_format = native_format(schema) if native and schema else None
    convo = with_instruction(messages, schema)
    ceiling = max_tokens * MAX_TOKENS_GROWTH if max_tokens else None
    raised: int | None = None
    for reask in range(reask_limit + 1):
        completion = await call(convo, response_format, raised)
        cut = getattr(completion, "finish_reason", None) == "length"
        try:
            return Structured(parse_answer(completion.text, schema), completion, reask, raised)
        except LLMResponseError as exc:
            asked = raised or max_tokens
            where = f" (cut off at max_tokens={asked})" if cut and asked else ""
            if reask == reask_limit:
                raise LLMResponseError(f"{exc}{where} (after {reask_limit} re-asks)") from None
            problem = str(exc)
        current = raised or max_tokens or 0
        if cut and ceiling is not None and current < ceiling:
            raised = min(2 * current, ceiling)
        reply = (
            f"That answer was cut off before it ended ({problem}). Reply with only the "
            "complete JSON value, as short as the schema allows."
            if cut
            else f"That answer is not valid: {problem}. Reply with only the corrected JSON value."
        )
        convo = [
            *convo,
            {"role": "assistant", "content": completion.text},
            {"role": "user", "content": reply},
        ]
    raise AssertionError("unreachable")  # pragma: no cover
