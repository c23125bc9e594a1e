"""The Ray executor against a real local Ray instance (2 CPUs, loopback only).

What a user relies on: a Ray run writes the records a local run with the same shards
writes; a worker that dies is retried and the run still ends with exactly n distinct
records; a run restarted after some shards failed redoes only those shards; every shard
shares one global RPM budget (the provider sees no 429) and one response cache; a node
whose sandbox is not safe refuses code jobs. Ray starts once for the module (slow on two
cores) and is shut down at the end."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import engine_fixtures as fx
import pytest
import ray_fixtures  # noqa: F401  (registers test_guard in this process)
from hypothesis import given
from hypothesis import strategies as st

import synth
from synth.executors import get_executor
from synth.executors.ray_gate import Pacer
from synth.testing import StubServer

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "tests" / "support"  # the fixture modules the Ray workers import
ray = pytest.importorskip("ray")
CARDS = ROOT / "recipes" / "card-transactions.yaml"
# Time-independent (card-transactions draws card expiry dates relative to now).
PROFILES = ROOT / "recipes" / "user-profiles.yaml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One Ray instance for the module. Workers inherit this environment: the fixture
    modules on PYTHONPATH and a dummy key for the loopback stub (keys are never
    forwarded by the executor, only SYNTH_* settings and endpoints)."""
    markers = tmp_path_factory.mktemp("ray-markers")
    saved = dict(os.environ)
    os.environ.update(
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")])),
        SYNTH_PLUGINS="engine_fixtures,ray_fixtures",
        SYNTH_TEST_FIXTURE_DIR=str(markers),
        OPENAI_API_KEY="sk-test-not-a-key",
    )
    ray.init(
        address="local",  # a private instance, even if a cluster runs on this machine
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    try:
        yield markers
    finally:
        ray.shutdown()
        os.environ.clear()
        os.environ.update(saved)


def _run(recipe: Any, out: Path, **kw: Any) -> synth.RunResult:
    return asyncio.run(synth.run(recipe, out=out, **kw))


def _sorted_lines(path: Path) -> list[bytes]:
    return sorted(path.read_bytes().splitlines(), key=lambda line: json.loads(line)["id"])


def _starts(markers: Path, seed: int, shard: int) -> list[str]:
    file = markers / f"starts-{seed}-{shard}"
    return file.read_text().splitlines() if file.exists() else []


def test_a_ray_run_writes_the_records_of_a_local_run(cluster: Path, tmp_path: Path) -> None:
    local = _run(PROFILES, tmp_path / "local", n=300, seed=5, workers=2)
    on_ray = _run(PROFILES, tmp_path / "ray", n=300, seed=5, executor="ray", shards=2)
    assert on_ray.kept == local.kept == 300 and on_ray.stop_reason == "done"
    assert _sorted_lines(on_ray.data_path) == _sorted_lines(local.data_path)
    assert on_ray.data_path.read_bytes() == local.data_path.read_bytes()  # merged in shard order
    assert on_ray.rejects_path.read_bytes() == local.rejects_path.read_bytes()
    assert on_ray.manifest["executor"]["name"] == "ray"
    assert on_ray.manifest["counts"] == local.manifest["counts"]
    assert not (tmp_path / "ray" / "parts").exists()  # merged, then cleaned up


def test_synth_run_executor_ray_on_the_command_line(
    cluster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from synth.cli import main

    out = tmp_path / "cli"
    argv = ["run", str(PROFILES), "-n", "40", "--seed", "6", "--out", str(out)]
    assert main([*argv, "--executor", "ray", "--shards", "2"]) == 0  # reuses this Ray
    assert "Kept 40 of" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray" and manifest["workers"] == 2
    assert main([*argv, "--shards", "2"]) == 0  # the same run, finished: nothing to do
    assert "already holds this finished run" in capsys.readouterr().out
    assert main([*argv, "--address", "ray://head:10001"]) == 2
    assert "--address" in capsys.readouterr().err


def test_a_killed_shard_is_retried_and_the_run_keeps_exactly_n(
    cluster: Path, tmp_path: Path
) -> None:
    recipe = fx.counter_recipe()
    recipe["steps"].append({"use": "test_guard", "at": 20})
    (cluster / "die-11-1").touch()  # shard 1's worker process exits once, mid-run
    result = _run(recipe, tmp_path / "ray", n=200, seed=11, executor="ray", shards=2)
    assert not (cluster / "die-11-1").exists()  # it did die
    starts = _starts(cluster, 11, 1)
    assert len(starts) == 2 and starts[0].split()[0] != starts[1].split()[0]  # another process
    assert int(starts[1].split()[1]) > int(starts[0].split()[1])  # resumed, not restarted
    ids = [json.loads(line)["id"] for line in result.data_path.read_bytes().splitlines()]
    assert result.kept == 200 == len(ids) == len(set(ids))
    assert result.manifest["executor"]["shards"]["shard-001-of-002"]["processes"] == 2
    local = _run(recipe, tmp_path / "local", n=200, seed=11, workers=2)
    assert result.data_path.read_bytes() == local.data_path.read_bytes()


def test_a_restarted_run_redoes_only_the_unfinished_shards(cluster: Path, tmp_path: Path) -> None:
    recipe = fx.counter_recipe()
    recipe["steps"].append({"use": "test_guard", "at": 15})
    for shard in (1, 2):
        (cluster / f"fail-12-{shard}").touch()
    out = tmp_path / "ray"
    with pytest.raises(synth.SinkError, match=r"2 of 4 shards failed") as err:
        _run(recipe, out, n=120, seed=12, executor="ray", shards=4)
    assert "shard-001-of-004" in str(err.value) and "told to fail" in str(err.value)
    parts = out / "parts"
    finished = {
        p.name: json.loads((p / "manifest.json").read_text())
        for p in sorted(parts.iterdir())
        if json.loads((p / "manifest.json").read_text())["status"] == "finished"
    }
    assert sorted(finished) == ["shard-000-of-004", "shard-003-of-004"]

    for shard in (1, 2):
        (cluster / f"fail-12-{shard}").unlink()
    result = _run(recipe, out, n=120, seed=12, executor="ray", shards=4)
    assert result.kept == 120 and result.stop_reason == "done"
    assert [len(_starts(cluster, 12, s)) for s in range(4)] == [1, 2, 2, 1]
    assert result.manifest["executor"]["reused_shards"] == sorted(finished)
    for before in finished.values():  # reused as they were, not rewritten
        entry = next(s for s in result.manifest["shards"] if s["shard"] == before["shard"])
        assert entry["counts"] == before["counts"]
    ids = [json.loads(line)["id"] for line in result.data_path.read_bytes().splitlines()]
    assert len(ids) == len(set(ids)) == 120


@pytest.mark.parametrize("rpm_from", ["environment", "recipe"])
def test_llm_shards_share_one_rpm_budget_and_one_cache(
    cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rpm_from: str
) -> None:
    # The stub allows 8 requests/s (16 per 2 s window). The run's limit is 5/s for all
    # shards together (room for scheduling jitter on a busy machine); two shards pacing
    # themselves at 5/s each would send 10/s.
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    recipe = fx.counter_recipe() | {"model": "openai/stub", "concurrency": 4}
    if rpm_from == "environment":
        monkeypatch.setenv("SYNTH_LLM_RPM", "300")
    else:
        recipe["limits"] = {"openai/stub": {"rpm": 300}}
    recipe["steps"].append({"use": "test_ask"})

    async def main() -> tuple[synth.RunResult, dict[str, Any], synth.RunResult, dict[str, Any]]:
        async with StubServer(rpm=480, rpm_window=2.0) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            first = await synth.run(
                recipe, n=30, seed=13, out=tmp_path / "a", executor="ray", shards=2
            )
            after_first = stub.stats.as_dict()
            again = await synth.run(
                recipe, n=30, seed=13, out=tmp_path / "b", executor="ray", shards=2
            )
            return first, after_first, again, stub.stats.as_dict()

    first, stats, again, stats_again = asyncio.run(main())
    assert first.kept == 30 and first.stop_reason == "done"
    assert stats["ok"] >= 30 and stats["429"] == 0
    assert first.manifest["llm"]["rate_limited"] == 0
    # The second run (another directory, same records) is answered from the shared cache
    # (cache_hits below); it may send a few calls for records it started past the first
    # run's last ones (at most the records in flight: concurrency x shards).
    assert stats_again["requests"] - stats["requests"] <= 4 * 2
    assert again.data_path.read_bytes() == first.data_path.read_bytes()
    assert again.manifest["llm"]["cache_hits"] >= 30


def test_a_node_whose_sandbox_is_unsafe_refuses_code_jobs(cluster: Path, tmp_path: Path) -> None:
    def code_recipe(**sandbox: Any) -> dict[str, Any]:
        recipe = fx.counter_recipe()
        recipe["verify"] = [{"use": "unit_tests", **sandbox}]
        return recipe

    broken = code_recipe(python="/nonexistent/python3", workers=1)
    with pytest.raises(synth.SandboxError, match="refuses code jobs"):
        _run(broken, tmp_path / "broken", n=10, seed=14, executor="ray", shards=2)
    unsafe = code_recipe(backend="unsafe-local", workers=1)
    with pytest.raises(synth.SandboxError, match="unsafe-local"):
        _run(unsafe, tmp_path / "unsafe", n=10, seed=14, executor="ray", shards=2)
    assert not (tmp_path / "broken" / "data.jsonl").read_bytes()  # nothing ran unjailed


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    executor = get_executor("ray")
    with pytest.raises(synth.ConfigError, match=r"pip install 'synth\[ray\]'"):
        asyncio.run(executor.shard_count(workers=1, shards=None))
    with pytest.raises(synth.ConfigError, match="--executor ray"):
        get_executor("local", address="ray://head:10001")


def test_help_and_rule_based_runs_do_not_import_ray(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys, contextlib, io\n"
        "from synth.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "import synth\n"
        f"asyncio.run(synth.run({str(CARDS)!r}, n=5, out={str(tmp_path)!r}))\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


@given(
    rpm=st.floats(1, 10_000),
    times=st.lists(st.floats(0, 100), min_size=1, max_size=40),
)
def test_the_rate_actor_spaces_requests_by_the_global_rpm(rpm: float, times: list[float]) -> None:
    pacer = Pacer()
    sends = sorted(t + pacer.reserve("m", rpm, None, 0, t) for t in sorted(times))
    gaps = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    assert all(g >= 60 / rpm - 1e-6 for g in gaps)
    assert sends[0] == min(times)  # the first request never waits


def test_the_rate_actor_keeps_tokens_per_minute() -> None:
    pacer, tpm = Pacer(), 6000.0  # 100 tokens/s, a bucket of 1000
    assert pacer.reserve("m", None, tpm, 1000, 0.0) == 0.0
    assert pacer.reserve("m", None, tpm, 500, 0.0) == pytest.approx(5.0)
    pacer.refund("m", tpm, 500, 0.0)  # the first call used nothing: its tokens come back
    assert pacer.reserve("m", None, tpm, 100, 0.0) == pytest.approx(1.0)
