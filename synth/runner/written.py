"""Recording which data fields each LLM step wrote (`meta["llm_fields"]`).

Every step names its output differently (`output_field:`, `to:`, a fixed `question`/
`answer` pair, a plugin's own choice), so instead of teaching the engine each step's
configuration, the engine watches: a record coming out of an LLM step is compared with
the record that went in (the same id, or its first parent), and every top-level field
that is new or changed was written by that step. A source step that calls a model (it
never reads its input) wrote all of its fields. What measures a run reads the result
through `synth.text.fields`.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from synth.context import Context
from synth.records import Record
from synth.text.fields import LLM_FIELDS

StepFn = Callable[[AsyncIterator[Record], Context], AsyncIterator[Record]]

# Inputs remembered to compare outputs with: steps hold at most their concurrency in
# flight, far below this, so memory stays flat however long the run.
WINDOW = 8192


def tagging(fn: StepFn) -> StepFn:
    """`fn` with the fields it wrote added to each output record's `meta["llm_fields"]`."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        before: OrderedDict[str, dict[str, Any]] = OrderedDict()
        fed = False

        async def inputs() -> AsyncIterator[Record]:
            nonlocal fed
            async for r in records:
                fed = True
                before[r.id] = r.data
                if len(before) > WINDOW:
                    before.popitem(last=False)
                yield r

        out = fn(inputs(), ctx)
        try:
            async for r in out:
                yield _tag(r, before, source=not fed)
        finally:
            aclose = getattr(out, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(RuntimeError):  # already closing
                    await aclose()

    return run


def _tag(r: Record, before: OrderedDict[str, dict[str, Any]], *, source: bool) -> Record:
    if source:
        parent: dict[str, Any] | None = {}
    else:
        parent = before.get(r.id)
        if parent is None:
            parents = r.meta.get("parents") or []
            parent = before.get(parents[0]) if parents else None
    if parent is None:
        return r  # its input is unknown: claim nothing rather than everything
    wrote = [k for k, v in r.data.items() if k not in parent or parent[k] != v]
    if not wrote:
        return r
    known = list(r.meta.get(LLM_FIELDS) or [])
    new = [k for k in wrote if k not in known]
    return Record(r.id, r.data, {**r.meta, LLM_FIELDS: [*known, *new]}) if new else r
