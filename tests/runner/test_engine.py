"""The engine: determinism, n-that-pass with budgets, stop reasons, bounded memory."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import engine_fixtures as fx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import synth
from synth.context import Context
from synth.records import Record, record_id
from synth.registry import step
from synth.runner.engine import RunLimits, Tally, outcomes
from synth.runner.recipe import from_dict

IN_FLIGHT = {"produced": 0, "consumed": 0, "max_lag": 0}


@step("test_tracked_source", schema={"type": "object"})
def tracked_source() -> Any:
    """Endless source that records how far ahead of the consumer it has been pulled."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        i = ctx.start_index
        while True:
            IN_FLIGHT["produced"] += 1
            lag = IN_FLIGHT["produced"] - IN_FLIGHT["consumed"]
            IN_FLIGHT["max_lag"] = max(IN_FLIGHT["max_lag"], lag)
            yield Record(
                record_id(ctx.recipe_hash, ctx.seed, i), {"i": i, "pad": "x" * 1000}, {"index": i}
            )
            i += 1

    return run


def run(recipe: Any, out: Path, **kw: Any) -> synth.RunResult:
    return asyncio.run(synth.run(recipe, out=out, **kw))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 60), fan=st.booleans())
def test_same_recipe_and_seed_give_byte_identical_output(seed: int, n: int, fan: bool) -> None:
    recipe = fx.counter_recipe()
    if fan:
        recipe["steps"].append({"use": "test_fanout", "k": 3})
    with tempfile.TemporaryDirectory() as tmp:
        a = run(recipe, Path(tmp, "a"), n=n, seed=seed)
        b = run(recipe | {"concurrency": 1}, Path(tmp, "b"), n=n, seed=seed)
        data = a.data_path.read_bytes()
        assert data == b.data_path.read_bytes()
        assert a.rejects_path.read_bytes() == b.rejects_path.read_bytes()
        assert a.kept == n and len(data.splitlines()) == n
    streamed = asyncio.run(_collect(recipe, n=n, seed=seed))
    assert [r.to_json().encode() for r in streamed] == data.splitlines()


async def _collect(recipe: Any, **kw: Any) -> list[Record]:
    return [r async for r in synth.stream(recipe, **kw)]


def test_different_seeds_give_different_records(tmp_path: Path) -> None:
    a = run(fx.counter_recipe(), tmp_path / "a", n=20, seed=1)
    b = run(fx.counter_recipe(), tmp_path / "b", n=20, seed=2)
    assert a.data_path.read_bytes() != b.data_path.read_bytes()


def test_rejects_carry_reason_and_verdicts_and_counts_add_up(tmp_path: Path) -> None:
    r = run(fx.counter_recipe(), tmp_path, n=200, seed=5)
    rejects = [json.loads(line) for line in r.rejects_path.read_text().splitlines()]
    assert rejects and all(x["meta"]["reject_reason"] == "too_big" for x in rejects)
    assert all(x["meta"]["verdicts"][-1]["ok"] is False for x in rejects)
    m = r.manifest
    assert m["counts"] == {
        "generated": 200 + len(rejects),
        "kept": 200,
        "rejected": len(rejects),
        "rejected_by_reason": {"too_big": len(rejects)},
    }
    assert m["stop_reason"] == "done" and m["status"] == "finished"
    assert m["files"]["data.jsonl"]["lines"] == 200
    assert m["recipe"]["hash"] == from_dict(fx.counter_recipe()).hash
    assert 0 < m["diversity"]["distinct_2"] <= 1 and m["diversity"]["duplicates"] == 0


def test_attempt_budget_stops_a_run_that_cannot_reach_n(tmp_path: Path) -> None:
    recipe = {"steps": [{"use": "test_counter"}], "verify": [{"use": "test_max_value", "max": -1}]}
    r = run(recipe, tmp_path / "a", n=5)
    assert (r.stop_reason, r.generated, r.kept) == ("max_attempts", 10 * 5 + 100, 0)
    r = run(recipe | {"budget": {"max_attempts": 7}}, tmp_path / "b", n=5)
    assert (r.stop_reason, r.generated) == ("max_attempts", 7)


def test_a_finite_source_that_runs_dry_says_so(tmp_path: Path) -> None:
    r = run(fx.counter_recipe(limit=10), tmp_path, n=50)
    assert r.stop_reason == "exhausted" and r.generated == 10


def test_time_budget_stops_a_slow_source(tmp_path: Path) -> None:
    r = run(fx.counter_recipe(delay=0.05), tmp_path, n=1000, max_seconds=0.4)
    assert r.stop_reason == "max_seconds" and 0 < r.kept < 1000
    assert r.manifest["durations"]["total_s"] < 2


def test_a_budget_exceeded_from_the_llm_layer_is_a_clean_stop(tmp_path: Path) -> None:
    r = run(fx.counter_recipe(budget_at=30, budget_reason="max_tokens"), tmp_path, n=100)
    assert r.stop_reason == "max_tokens" and r.generated == 30
    assert len(r.data_path.read_text().splitlines()) == r.kept


def test_the_engine_holds_a_bounded_number_of_records_in_flight() -> None:
    """Memory stays flat: however large n is, the source is never pulled more than the
    chain's concurrency (plus the stage hand-offs) ahead of the consumer."""

    async def consume(concurrency: int, n: int) -> int:
        IN_FLIGHT.update(produced=0, consumed=0, max_lag=0)
        recipe = from_dict(
            {"steps": [{"use": "test_tracked_source"}], "concurrency": concurrency, "verify": []}
        )
        ctx = Context(seed=0, recipe_hash=recipe.hash)
        tally = Tally()
        async for _ in outcomes(recipe, ctx, RunLimits(n=n, max_attempts=n), tally):
            IN_FLIGHT["consumed"] += 1
            await asyncio.sleep(0)  # a consumer slower than the source
        assert tally.kept == n
        return IN_FLIGHT["max_lag"]

    for concurrency in (1, 8):
        small = asyncio.run(consume(concurrency, 200))
        large = asyncio.run(consume(concurrency, 5000))
        assert large == small <= concurrency + 3


def test_rule_based_runs_never_import_the_llm_layer(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys, synth\n"
        f"asyncio.run(synth.run({fx.counter_recipe()!r}, n=5, out={str(tmp_path)!r}))\n"
        "print('synth.llm.client' in sys.modules, 'litellm' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=fx.plugin_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_a_finished_run_is_not_redone_and_a_raised_budget_continues_it(tmp_path: Path) -> None:
    log = tmp_path / "generated.log"
    recipe = fx.counter_recipe(log=str(log))
    first = run(recipe, tmp_path / "out", n=30, max_attempts=20)
    assert first.stop_reason == "max_attempts" and log.read_text().count("\n") >= 20
    before = log.read_text()
    again = run(recipe, tmp_path / "out", n=30, max_attempts=20)
    assert again.already_done and log.read_text() == before
    more = run(recipe, tmp_path / "out", n=30)  # default budget: room to finish
    assert (more.stop_reason, more.kept) == ("done", 30)
    fresh = run(recipe, tmp_path / "fresh", n=30)
    assert fresh.data_path.read_bytes() == more.data_path.read_bytes()
    done = run(recipe, tmp_path / "out", n=30)
    assert done.already_done


@pytest.mark.parametrize("fan", [False, True])
def test_a_run_that_crashes_resumes_to_the_same_bytes(
    tmp_path: Path, fan: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = fx.counter_recipe()
    if fan:
        recipe["steps"].append({"use": "test_fanout", "k": 7})
    # Slow enough (~0.8 s) for a checkpoint or two; the delay is not part of the recipe.
    monkeypatch.setenv("TEST_COUNTER_DELAY", "0.014" if fan else "0.002")

    def crash(progress: dict[str, Any]) -> None:
        if 0 < progress["kept"] < 400:
            raise KeyboardInterrupt  # right after a checkpoint, like a kill

    with pytest.raises(KeyboardInterrupt):
        run(recipe, tmp_path / "a", n=400, on_progress=crash)
    crashed = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert crashed["status"] == "running" and 0 < crashed["counts"]["kept"] < 400
    resumed = run(recipe, tmp_path / "a", n=400)
    assert resumed.resumed and resumed.kept == 400
    assert resumed.manifest["durations"]["processes"] == 2
    monkeypatch.delenv("TEST_COUNTER_DELAY")
    fresh = run(recipe, tmp_path / "b", n=400)
    assert resumed.data_path.read_bytes() == fresh.data_path.read_bytes()
    assert resumed.rejects_path.read_bytes() == fresh.rejects_path.read_bytes()
    assert resumed.manifest["counts"] == fresh.manifest["counts"]
