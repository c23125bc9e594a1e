"""`meta["llm_fields"]`: the engine records which data fields each LLM step wrote, by
comparing what comes out of the step with what went in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from synth.context import Context
from synth.records import Record, child_id
from synth.runner.written import tagging

keys = st.text("abcdefgh", min_size=1, max_size=3)
values = st.one_of(st.text(max_size=5), st.integers(0, 3))


async def _through(step: Any, inputs: list[Record]) -> list[Record]:
    async def source() -> AsyncIterator[Record]:
        for r in inputs:
            yield r

    return [r async for r in tagging(step)(source(), Context(seed=0))]


@given(
    data=st.dictionaries(keys, values, max_size=6),
    changes=st.dictionaries(keys, values, max_size=4),
    as_child=st.booleans(),
)
def test_exactly_the_new_or_changed_fields_are_recorded(
    data: dict[str, Any], changes: dict[str, Any], as_child: bool
) -> None:
    before = Record("p", data, {"llm_fields": ["earlier"]})

    async def step(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async for r in records:
            new = {**r.data, **changes}
            if as_child:  # a step that derives new records names their parent
                yield Record(child_id(r, "x"), new, {**r.meta, "parents": [r.id]})
            else:
                yield r.evolve(data=new)

    (out,) = asyncio.run(_through(step, [before]))
    # in the order of the record's own fields
    merged = {**data, **changes}
    wrote = [k for k in merged if k in changes and (k not in data or data[k] != changes[k])]
    assert out.meta["llm_fields"] == ["earlier", *[k for k in wrote if k != "earlier"]]
    assert out.data == {**data, **changes}


def test_a_source_that_calls_a_model_wrote_all_its_fields() -> None:
    async def source(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        yield Record("s", {"question": "q", "answer": "a"}, {})

    (out,) = asyncio.run(_through(source, []))
    assert out.meta["llm_fields"] == ["question", "answer"]


def test_a_record_the_step_did_not_change_claims_nothing() -> None:
    async def failing(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async for r in records:
            yield r.evolve(error={"step": "prompt", "reason": "llm_unavailable"})

    (out,) = asyncio.run(_through(failing, [Record("p", {"body": "b"}, {})]))
    assert "llm_fields" not in out.meta
