"""Tiny steps and verifiers for the engine tests, registered like any plugin.

Subprocesses and `--workers` processes load this module through `SYNTH_PLUGINS`
(see `plugin_env`), exactly as a user's local plugin would be loaded."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.chain import Verdict
from synth.context import Context, rng_for
from synth.errors import BudgetExceeded
from synth.records import Record, child_id, record_id
from synth.registry import step, verifier

HERE = Path(__file__).resolve().parent
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]


def plugin_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that must see these fixtures."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    env["SYNTH_PLUGINS"] = "engine_fixtures"
    env.update(extra)
    return env


@step(
    "test_counter",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "limit": {"type": "integer", "minimum": 0},
            "delay": {"type": "number", "minimum": 0},
            "log": {"type": "string"},
            "budget_at": {"type": "integer"},
            "budget_reason": {"type": "string"},
        },
    },
)
def counter(
    limit: int | None = None,
    delay: float = 0.0,
    log: str | None = None,
    budget_at: int | None = None,
    budget_reason: str = "max_cost_usd",
) -> Any:
    """Source: record i holds words and numbers drawn from an RNG seeded by (seed, i)."""

    # The environment can slow a run down or log it without changing the recipe's hash,
    # so a killed slow run and a fast in-process run must produce the same bytes.
    pause = float(os.environ.get("TEST_COUNTER_DELAY", delay))
    log = os.environ.get("TEST_COUNTER_LOG", log)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT) if log else None
        try:
            i = ctx.start_index
            while limit is None or i < limit:
                if budget_at is not None and i >= budget_at:
                    raise BudgetExceeded("test cap", reason=budget_reason)
                if pause:
                    await asyncio.sleep(pause)
                rng = rng_for(ctx.seed, "test_counter", i)
                data = {
                    "i": i,
                    "value": rng.randint(0, 99),
                    "text": " ".join(rng.choice(WORDS) for _ in range(4)),
                    "kind": rng.choice(["a", "b", "c"]),
                }
                if fd is not None:
                    os.write(fd, f"{i}\n".encode())  # what was generated, for resume tests
                yield Record(
                    record_id(ctx.recipe_hash, ctx.seed, i),
                    data,
                    {"index": i, "recipe": ctx.recipe_name},
                )
                i += 1
        finally:
            if fd is not None:
                os.close(fd)

    return run


@step(
    "test_fanout",
    schema={"type": "object", "properties": {"k": {"type": "integer", "minimum": 1}}},
)
def fanout(k: int = 3) -> Any:
    """Derives k children per record (a stand-in for paraphrase / QA generation)."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async for parent in records:
            for j in range(k):
                yield Record(
                    child_id(parent, "test_fanout", j),
                    {**parent.data, "child": j},
                    {**parent.meta, "parents": [parent.id]},
                )

    return run


@verifier(
    "test_max_value",
    schema={
        "type": "object",
        "required": ["max"],
        "additionalProperties": False,
        "properties": {"max": {"type": "integer"}},
    },
)
def max_value(max: int) -> Any:
    """Rejects records whose value is above `max` (reason too_big)."""

    async def check(record: Record, ctx: Context) -> Verdict:
        v = record.data.get("value", 0)
        if v > max:
            return Verdict(False, reason="too_big", detail=f"{v} > {max}")
        return Verdict(True, score=1.0)

    return check


@verifier("test_even", schema={"type": "object", "additionalProperties": False})
def even() -> Any:
    """Rejects odd values (reason odd)."""

    async def check(record: Record, ctx: Context) -> Verdict:
        ok = record.data.get("value", 0) % 2 == 0
        return Verdict(ok, reason="" if ok else "odd")

    return check


def counter_recipe(**source: Any) -> dict[str, Any]:
    """A recipe dict: the counter source and a value <= 79 verifier (about 80% pass)."""
    return {
        "name": "counter",
        "steps": [{"use": "test_counter", **source}],
        "verify": [{"use": "test_max_value", "max": 79}],
    }


@step(
    "test_ask",
    schema={"type": "object", "properties": {"model": {"type": "string"}}},
    llm=True,
)
def ask(model: str | None = None) -> Any:
    """Asks the run's model to repeat each record's text (exercises ctx.llm)."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async for r in records:
            answer = await ctx.llm.complete(
                [{"role": "user", "content": f"Repeat: {r.data['text']}"}], model=model
            )
            yield r.evolve(data={**r.data, "answer": answer.text})

    return run
