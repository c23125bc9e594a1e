"""A recipe keeps every model slot busy: records in flight follow the models'
`max_concurrency`, a slow or failing call never stops other records from starting, and
the bytes a run writes do not depend on any of it.

The model is a `ScriptedLLM` whose calls take a number of event-loop turns drawn from a
hash of the prompt (no wall-clock time, so the tests are exact under load)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import engine_fixtures  # noqa: F401  (registers test_counter, test_max_value)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.context import Context
from synth.errors import LLMResponseError
from synth.runner.engine import RunLimits, Tally, outcomes
from synth.runner.recipe import DEFAULT_CONCURRENCY, from_dict
from synth.streams import window
from synth.testing import ScriptedLLM

MODEL = "openai/fake"


def recipe(**extra: Any) -> dict[str, Any]:
    return {
        "name": "throughput",
        "model": MODEL,
        "limits": {MODEL: {"max_concurrency": 50}},
        "steps": [
            {"use": "test_counter"},
            {"use": "prompt", "prompt": "Item {{ i }}: {{ text }}", "output_field": "answer"},
        ],
        "verify": [{"use": "test_max_value", "max": 79}],
        **extra,
    }


class SlowLLM(ScriptedLLM):
    """Each call takes `delay(prompt)` loop turns and answers unusably (a per-record
    failure) when `fails(prompt)`; it counts the calls running at once."""

    def __init__(
        self, salt: int = 0, max_turns: int = 0, fail_pct: int = 0, min_turns: int = 0
    ) -> None:
        super().__init__(lambda messages, **_: "ok " + messages[-1]["content"].upper())
        self.salt, self.max_turns, self.fail_pct = salt, max_turns, fail_pct
        self.min_turns = min_turns
        self.stuck: asyncio.Event | None = None  # if set, "Item 0:" waits for it
        self.running = self.max_running = self.done = 0

    def _draw(self, text: str) -> int:
        digest = hashlib.blake2b(f"{self.salt}\0{text}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    async def complete(self, messages: list[dict[str, Any]], **kw: Any) -> Any:
        text = messages[-1]["content"]
        if self.stuck is not None and text.startswith("Item 0:"):
            await self.stuck.wait()
            return await super().complete(messages, **kw)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            for _ in range(self.min_turns + self._draw(text) % (self.max_turns + 1)):
                await asyncio.sleep(0)
            if self._draw(text + "fail") % 100 < self.fail_pct:
                raise LLMResponseError("fake unusable answer")
        finally:
            self.running -= 1
            self.done += 1
        return await super().complete(messages, **kw)


async def run(raw: dict[str, Any], llm: Any, n: int) -> list[str]:
    """The engine's outcomes for `n` kept records, as the lines a run writes (data.jsonl
    and rejects.jsonl, with their verdicts). Not `ctx.stats`: it also counts work in
    flight when the run stopped, which depends on the concurrency as it always has."""
    rec = from_dict(raw)
    ctx = Context(seed=3, recipe_name=rec.name, recipe_hash=rec.hash, llm=llm)
    lines = []
    async for o in outcomes(rec, ctx, RunLimits(n=n, max_attempts=10 * n + 100), Tally()):
        verdict = {"ok": o.ok, "reason": o.verdict.reason, "detail": o.verdict.detail}
        lines.append(o.record.to_json() + json.dumps(verdict, sort_keys=True))
    return lines


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    concurrency=st.integers(1, 64),
    salt=st.integers(0, 2**16),
    max_turns=st.integers(0, 25),
    fail_pct=st.integers(0, 30),
)
def test_the_lines_a_run_writes_equal_a_one_at_a_time_run(
    n: int, concurrency: int, salt: int, max_turns: int, fail_pct: int
) -> None:
    def llm() -> SlowLLM:
        return SlowLLM(salt, max_turns, fail_pct)

    one = asyncio.run(run(recipe(concurrency=1), llm(), n))
    many = asyncio.run(run(recipe(concurrency=concurrency), llm(), n))
    assert many == one
    assert sum(json.loads(line[line.rindex("{") :])["ok"] for line in one) == n


def test_a_stuck_call_does_not_stop_the_other_records() -> None:
    """The first record's call hangs; the model takes 50 calls at once (its limits), and
    with no `concurrency:` the prompt step keeps 50 records in flight: the other 49 slots
    stay busy until the step's window is full, and the run ends with the same lines."""
    slow = SlowLLM(min_turns=2, max_turns=3)  # calls overlap: none ends in its first turn
    slow.stuck = asyncio.Event()
    seen = {"calls_while_stuck": 0, "max_running_while_stuck": 0}

    async def main() -> list[str]:
        async def release_when_idle() -> None:
            assert slow.stuck is not None
            last, idle = -1, 0
            while idle < 50:
                await asyncio.sleep(0)
                idle = idle + 1 if slow.done == last else 0
                last = slow.done
            seen.update(calls_while_stuck=slow.done, max_running_while_stuck=slow.max_running)
            slow.stuck.set()

        watchdog = asyncio.ensure_future(release_when_idle())
        lines = await run(recipe(), slow, 400)
        await watchdog
        return lines

    lines = asyncio.run(main())
    assert from_dict(recipe()).concurrency == 50  # from the model's max_concurrency
    assert seen["max_running_while_stuck"] == 49
    assert seen["calls_while_stuck"] == window(50) - 1  # 449 records went past the stuck one
    assert lines == asyncio.run(run(recipe(concurrency=1), SlowLLM(), 400))


def steps_concurrency(raw: dict[str, Any]) -> tuple[int, list[int]]:
    rec = from_dict(raw)
    return rec.concurrency, [s.config["concurrency"] for s in rec.steps if s.use == "prompt"]


def test_records_in_flight_follow_the_models_unless_the_recipe_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SYNTH_LLM_MAX_CONCURRENCY", raising=False)
    assert steps_concurrency(recipe()) == (50, [50])
    assert steps_concurrency(recipe(limits={})) == (64, [64])  # the built-in max_concurrency
    assert steps_concurrency(recipe(concurrency=3)) == (3, [3])  # explicit wins
    local = recipe(model="local/smollm2", limits={})
    assert steps_concurrency(local) == (1, [1])  # one llama.cpp context: one at a time
    # the largest of the models used: a step's own model counts too
    mixed = recipe(model="local/smollm2")
    mixed["steps"][1]["model"] = MODEL
    assert steps_concurrency(mixed) == (50, [50])
    no_model = {"steps": [{"use": "test_counter"}], "verify": []}
    assert from_dict(no_model).concurrency == DEFAULT_CONCURRENCY

    monkeypatch.setenv("SYNTH_LLM_MAX_CONCURRENCY", "20")
    assert steps_concurrency(recipe()) == (20, [20])  # the environment overrides limits:
    assert steps_concurrency(local) == (1, [1])
    assert steps_concurrency(recipe(concurrency=3)) == (3, [3])


def test_the_default_concurrency_leaves_the_recipe_hash_alone() -> None:
    hashes = {
        from_dict(r).hash
        for r in (recipe(), recipe(concurrency=7), recipe(limits={MODEL: {"max_concurrency": 5}}))
    }
    assert len(hashes) == 1
