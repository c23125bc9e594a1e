"""The run directory: refusing other runs, locking, and resuming from a torn state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import engine_fixtures as fx
import pytest

import synth
from synth.context import Context
from synth.errors import SinkError
from synth.runner.engine import Outcome, RunLimits, Tally, outcomes
from synth.runner.recipe import from_dict
from synth.runner.rundir import RunDir


def run(recipe: Any, out: Path, **kw: Any) -> synth.RunResult:
    return asyncio.run(synth.run(recipe, out=out, **kw))


def test_a_directory_holding_another_run_is_refused_unless_forced(tmp_path: Path) -> None:
    run(fx.counter_recipe(), tmp_path, n=10, seed=1)
    before = (tmp_path / "data.jsonl").read_bytes()
    with pytest.raises(SinkError, match=r"seed 1 \(this run: 2\).*--force"):
        run(fx.counter_recipe(), tmp_path, n=10, seed=2)
    with pytest.raises(SinkError, match=r"n 10 \(this run: 11\)"):
        run(fx.counter_recipe(), tmp_path, n=11, seed=1)
    with pytest.raises(SinkError, match="recipe_hash"):
        run(fx.counter_recipe(limit=99), tmp_path, n=10, seed=1)
    assert (tmp_path / "data.jsonl").read_bytes() == before  # refused means untouched
    forced = run(fx.counter_recipe(), tmp_path, n=10, seed=2, force=True)
    assert forced.manifest["seed"] == 2 and forced.data_path.read_bytes() != before


def test_output_not_written_by_synth_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text('{"mine": 1}\n')
    with pytest.raises(SinkError, match="no manifest.json"):
        run(fx.counter_recipe(), tmp_path, n=3)
    assert (tmp_path / "data.jsonl").read_text() == '{"mine": 1}\n'


def test_two_processes_cannot_write_one_directory(tmp_path: Path) -> None:
    first = RunDir(tmp_path, {"seed": 0})
    first.open({})
    try:
        with pytest.raises(SinkError, match="another synth process"):
            RunDir(tmp_path, {"seed": 0}).open({})
    finally:
        first.close()
    RunDir(tmp_path, {"seed": 0}).open({})  # the lock went with the first owner


def test_resume_from_a_torn_batch_mid_group_writes_each_record_once(tmp_path: Path) -> None:
    """Simulate a SIGKILL between a checkpoint and the next: the checkpoint falls inside
    the children of one root record, a later batch is half on disk, a line is cut."""
    recipe_dict = fx.counter_recipe()
    recipe_dict["steps"].append({"use": "test_fanout", "k": 4})
    recipe = from_dict(recipe_dict)
    n, out = 30, tmp_path / "torn"
    identity = {"recipe_hash": recipe.hash, "seed": 3, "n": n, "shard": None, "workers": 1}

    async def first_outcomes(k: int) -> list[Outcome]:
        ctx = Context(seed=3, recipe_name=recipe.name, recipe_hash=recipe.hash)
        limits = RunLimits(n=n, max_attempts=1000)
        return [o async for o in outcomes(recipe, ctx, limits, Tally())][:k]

    got = asyncio.run(first_outcomes(14))
    rd = RunDir(out, identity, batch_size=10_000, interval=1e9)
    rd.open({"recipe": {"name": recipe.name, "hash": recipe.hash}, "seed": 3, "n": n})
    tally = Tally()
    for o in got[:10]:  # root 2 has children 8, 9 written, 10, 11 not yet
        tally.add(o)
        rd.add(o, tally, elapsed=0.1)
    rd.checkpoint(tally, elapsed=0.1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["index"] == 2 and len(manifest["checkpoint"]["ids"]) == 2
    with open(out / "data.jsonl", "a") as fh:  # a batch the checkpoint never covered
        fh.write(got[10].record.to_json() + "\n" + got[11].record.to_json()[:40])
    rd.close()

    resumed = run(recipe_dict, out, n=n, seed=3)
    fresh = run(recipe_dict, tmp_path / "fresh", n=n, seed=3)
    assert resumed.resumed
    assert resumed.data_path.read_bytes() == fresh.data_path.read_bytes()
    assert resumed.rejects_path.read_bytes() == fresh.rejects_path.read_bytes()
    assert resumed.manifest["counts"] == fresh.manifest["counts"]
    lines = resumed.data_path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])


def test_a_file_shorter_than_its_checkpoint_is_refused(tmp_path: Path) -> None:
    run(fx.counter_recipe(budget_at=50), tmp_path, n=100)  # stops early on a "budget"
    (tmp_path / "data.jsonl").write_text("")
    with pytest.raises(SinkError, match="shorter"):
        run(fx.counter_recipe(budget_at=50), tmp_path, n=100)
