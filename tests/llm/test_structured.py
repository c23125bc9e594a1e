"""Structured output: tolerant extraction, validation, and the re-ask loop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth.errors import LLMResponseError
from synth.llm.client import LLMClient, RetryPolicy
from synth.llm.http import TRANSPORTS
from synth.llm.structured import extract_json, parse_answer
from synth.testing import StubServer

SCHEMA = {
    "type": "object",
    "required": ["name", "price"],
    "properties": {"name": {"type": "string"}, "price": {"type": "number", "minimum": 0}},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    value=st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=4),
    before=st.sampled_from(["", "Sure! Here it is:\n", "Answer: ", "```json\n", "```\n"]),
    after=st.sampled_from(["", "\nHope this helps.", "\n```", " Let me know!"]),
)
def test_a_json_object_is_found_inside_prose_and_code_fences(
    value: Any, before: str, after: str
) -> None:
    assert extract_json(before + json.dumps(value) + after) == value


@pytest.mark.parametrize(
    "text",
    ['{"name": "x", "price":', "no json here", "```json\n{broken}\n```", ""],
)
def test_unparseable_answers_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        extract_json(text)


def test_schema_violations_name_the_path() -> None:
    with pytest.raises(LLMResponseError, match=r"\$\.price"):
        parse_answer('{"name": "x", "price": -1}', SCHEMA)
    assert parse_answer('{"name": "x", "price": 2}', SCHEMA) == {"name": "x", "price": 2}


def reask_answer(request: dict[str, Any]) -> str:
    """Invalid first (truncated JSON in prose), valid once re-asked with the error."""
    if any(m["role"] == "assistant" for m in request["messages"]):
        return '{"name": "lamp", "price": 12.5}'
    return 'Here you go: {"name": "lamp", "price": '


def test_invalid_json_is_re_asked_with_the_error_and_then_valid() -> None:
    async def go() -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
        seen: list[dict[str, Any]] = []

        def answer(request: dict[str, Any]) -> str:
            seen.append(request)
            return reask_answer(request)

        async with StubServer(answer=answer) as stub:
            c = LLMClient(
                model="openai/stub-model",
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            out = await c.complete([{"role": "user", "content": "a product"}], schema=SCHEMA)
            return out, stub.stats.as_dict(), seen

    out, stats, seen = asyncio.run(go())
    assert out.parsed == {"name": "lamp", "price": 12.5}
    assert out.reasks == 1 and stats["requests"] == 2
    reask = seen[1]["messages"]
    assert reask[-2]["role"] == "assistant" and "not valid" in reask[-1]["content"]
    assert "schema" in seen[0]["messages"][0]["content"].lower()  # instructed, not native
    assert "response_format" not in seen[0]


def test_an_answer_that_stays_invalid_is_a_response_error_not_a_transport_retry() -> None:
    async def go() -> dict[str, Any]:
        async with StubServer(answer=lambda r: "I cannot do that.") as stub:
            c = LLMClient(
                model="openai/stub-model",
                retry=RetryPolicy(max_attempts=6),
                reask_limit=2,
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            with pytest.raises(LLMResponseError, match="after 2 re-asks"):
                await c.complete([{"role": "user", "content": "a product"}], schema=SCHEMA)
            assert c.usage()["failure_reasons"] == {"invalid_json": 1}
            return stub.stats.as_dict()

    assert asyncio.run(go())["requests"] == 3  # the first ask + 2 re-asks, no transport retries


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_truncated_answers_from_the_stub_are_repaired_by_re_asking(transport: str) -> None:
    async def go() -> tuple[list[Any], dict[str, Any]]:
        async with StubServer(bad_json_rate=0.3, seed=5) as stub:
            c = LLMClient(
                model="openai/stub-model",
                reask_limit=4,
                transport=transport,
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            out = await asyncio.gather(
                *(
                    c.complete(
                        [{"role": "user", "content": f"json please {i}"}], schema={"type": "object"}
                    )
                    for i in range(20)
                )
            )
            return out, stub.stats.as_dict()

    out, stats = asyncio.run(go())
    assert stats["bad_json"] > 0
    assert [o.parsed["echo"] for o in out] == [f"json please {i}" for i in range(20)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_native_schema_support_sends_response_format(transport: str) -> None:
    async def go() -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def answer(request: dict[str, Any]) -> str:
            seen.append(request)
            return '{"name": "lamp", "price": 1}'

        async with StubServer(answer=answer) as stub:
            c = LLMClient(
                model="openai/gpt-4o-mini",  # litellm says it supports response schemas
                transport=transport,
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            out = await c.complete([{"role": "user", "content": "a product"}], schema=SCHEMA)
            assert out.parsed == {"name": "lamp", "price": 1}
            return seen[0]

    sent = asyncio.run(go())
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA


def long_json(request: dict[str, Any]) -> str:
    """A valid answer of about 480 characters: whole only when max_tokens allows 120+."""
    return json.dumps({"items": [f"item number {i:03d}" for i in range(24)]})


def truncated_run(max_tokens: int, reask_limit: int) -> tuple[Any, list[int | None]]:
    async def go() -> tuple[Any, list[int | None]]:
        asked: list[int | None] = []

        def answer(request: dict[str, Any]) -> str:
            asked.append(request.get("max_tokens"))
            return long_json(request)

        async with StubServer(answer=answer, cut_at_max_tokens=True) as stub:
            c = LLMClient(
                model="openai/stub-model",
                reask_limit=reask_limit,
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            try:
                out: Any = await c.complete(
                    [{"role": "user", "content": "a list"}], schema={"type": "object"},
                    max_tokens=max_tokens,
                )  # fmt: skip
            except LLMResponseError as exc:
                out = exc
            return out, asked

    return asyncio.run(go())


def test_a_cut_off_answer_is_re_asked_with_more_max_tokens_and_lineage_says_so() -> None:
    out, asked = truncated_run(max_tokens=40, reask_limit=2)
    assert asked == [40, 80, 160]  # 160 and 320 characters cut; 640 holds the answer
    assert out.parsed == json.loads(long_json({})) and out.reasks == 2
    assert out.lineage()["max_tokens_raised_to"] == 160


def test_max_tokens_grows_at_most_four_fold_and_the_final_error_says_it_was_cut() -> None:
    out, asked = truncated_run(max_tokens=20, reask_limit=3)
    assert asked == [20, 40, 80, 80]  # capped at 4 x 20
    assert isinstance(out, LLMResponseError)
    assert "cut off at max_tokens=80" in str(out) and "after 3 re-asks" in str(out)


def test_an_answer_invalid_for_another_reason_keeps_its_max_tokens() -> None:
    async def go() -> list[int | None]:
        asked: list[int | None] = []

        def answer(request: dict[str, Any]) -> str:
            asked.append(request.get("max_tokens"))
            return reask_answer(request)

        async with StubServer(answer=answer, cut_at_max_tokens=True) as stub:
            c = LLMClient(
                model="openai/stub-model",
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            out = await c.complete([{"role": "user", "content": "x"}], schema=SCHEMA, max_tokens=50)
            assert out.reasks == 1 and "max_tokens_raised_to" not in out.lineage()
            return asked

    assert asyncio.run(go()) == [50, 50]
