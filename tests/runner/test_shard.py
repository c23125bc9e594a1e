"""Shards and the local process executor: what `--workers N` guarantees.

Guarantees (also in README "Parallel runs"):
1. For the same recipe, seed, n and number of workers the output is byte-identical.
2. A record depends only on (recipe, seed, index): whichever process generates index i
   writes the same line a single-process run writes for index i.
3. Shard s of S owns a disjoint index range and asks for its share of n, so shard 0's
   records are the first records of a single-process run; the whole run keeps exactly n.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import engine_fixtures as fx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import synth
from synth.runner.shard import plan


@given(n=st.integers(1, 10_000), count=st.integers(1, 16), attempts=st.integers(16, 10**6))
def test_shards_split_n_and_the_index_range_without_overlap(
    n: int, count: int, attempts: int
) -> None:
    shards = plan(n, count, attempts)
    assert sum(s.n for s in shards) == n
    assert [s.index for s in shards] == list(range(count))
    if count == 1:
        assert shards[0].stop is None and shards[0].start == 0
        return
    assert shards[0].start == 0 and shards[-1].stop == attempts
    for a, b in zip(shards, shards[1:], strict=False):
        assert a.stop == b.start
    assert all(s.stop is not None and s.stop - s.start == s.max_attempts for s in shards)
    assert plan(n, count, attempts) == shards  # a value: the same for whoever computes it


def test_two_workers_are_deterministic_and_agree_with_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_PLUGINS", "engine_fixtures")  # the worker processes need it
    recipe = fx.counter_recipe()

    def run(out: str, n: int, workers: int) -> synth.RunResult:
        return asyncio.run(synth.run(recipe, n=n, seed=3, out=tmp_path / out, workers=workers))

    a, b = run("a", 40, 2), run("b", 40, 2)
    lines = a.data_path.read_bytes().splitlines()
    assert len(lines) == 40 == a.kept and a.stop_reason == "done"
    assert b.data_path.read_bytes() == a.data_path.read_bytes()
    assert b.rejects_path.read_bytes() == a.rejects_path.read_bytes()
    assert [s["counts"]["kept"] for s in a.manifest["shards"]] == [20, 20]
    assert a.manifest["counts"]["generated"] == sum(
        s["counts"]["generated"] for s in a.manifest["shards"]
    )
    assert not (tmp_path / "a" / "parts").exists()  # merged, then cleaned up

    single = run("single", 300, 1).data_path.read_bytes().splitlines()
    assert lines[:20] == single[:20]  # shard 0 == the start of a one-process run
    assert set(lines) <= set(single)  # every record is the one its index always gives
    indices = [json.loads(line)["meta"]["index"] for line in lines]
    assert min(indices[20:]) >= plan(40, 2, 10 * 40 + 100)[1].start

    again = run("a", 40, 2)
    assert again.already_done
    with pytest.raises(synth.SinkError, match=r"workers 2 \(this run: 1\)"):
        run("a", 40, 1)
