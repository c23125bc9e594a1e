"""`synth run` as a user runs it: a real subprocess, real signals, real files."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import engine_fixtures as fx
import pytest

import synth

COUNTER = """\
name: counter
description: Counted records, about 80% of which pass.
steps:
  - use: test_counter
verify:
  - use: test_max_value
    max: 79
"""


def synth_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synth", *args],
        cwd=cwd,
        env=fx.plugin_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


BAD = {
    "malformed_yaml": (
        "steps:\n  - use: test_counter\n   limit: [\n",
        ["recipes/r.yaml", "line 3", "malformed YAML", "expected: valid YAML", "fix:"],
    ),
    "unknown_step": (
        "steps:\n  - use: test_countr\n",
        ["recipes/r.yaml: $.steps[0].use", "unknown step 'test_countr'", "test_counter"],
    ),
    "wrong_type": (
        "steps:\n  - use: test_counter\n    limit: many\n",
        ["recipes/r.yaml: $.steps[0].limit", "expected: a value of type integer", "'many'"],
    ),
    "wrong_type_top_level": (
        "steps: [{use: test_counter}]\nconcurrency: lots\n",
        ["recipes/r.yaml: $.concurrency", "expected: a value of type integer", "'lots'"],
    ),
    "unknown_named_verifier": (
        "steps: [{use: test_counter}]\nverify: [card-schemaa]\n",
        ["recipes/r.yaml: $.verify[0]", "unknown verifier 'card-schemaa'", "test_max_value"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipes_fail_clearly_with_exit_2_and_write_nothing(tmp_path: Path, case: str) -> None:
    text, needles = BAD[case]
    root = project(tmp_path, {"recipes/r.yaml": text})
    res = synth_cli("run", "recipes/r.yaml", "-n", "5", "--out", "out/x", cwd=root)
    assert res.returncode == 2, res.stderr
    for needle in [*needles, "expected:", "found:" if case != "malformed_yaml" else "", "fix:"]:
        assert needle in res.stderr, (needle, res.stderr)
    assert "Traceback" not in res.stderr and res.stdout == ""
    assert not (root / "out").exists()


def test_missing_recipe_and_missing_input_fail_clearly(tmp_path: Path) -> None:
    res = synth_cli("run", "recipes/none.yaml", "-n", "5", "--out", "o", cwd=tmp_path)
    assert res.returncode == 2 and "recipes/none.yaml: file not found" in res.stderr
    assert "fix:" in res.stderr and "Traceback" not in res.stderr
    root = project(tmp_path, {"recipes/r.yaml": "steps: [{use: test_counter}]\n"})
    res = synth_cli(
        "run", "recipes/r.yaml", "-n", "5", "--input", "nope.csv", "--out", "o", cwd=root
    )
    assert res.returncode == 2 and "nope.csv: --input: input file not found" in res.stderr
    assert not (root / "o").exists()


def test_kill_9_mid_run_then_rerun_finishes_with_exactly_n_records(tmp_path: Path) -> None:
    n = 1500
    root = project(tmp_path, {"recipes/counter.yaml": COUNTER})
    slow = {"TEST_COUNTER_DELAY": "0.001", "TEST_COUNTER_LOG": str(root / "generated.log")}
    args = [sys.executable, "-m", "synth", "run", "recipes/counter.yaml", "-n", str(n)]
    proc = subprocess.Popen(
        [*args, "--out", "out"], cwd=root, env=fx.plugin_env(**slow), stderr=subprocess.DEVNULL
    )
    manifest = root / "out" / "manifest.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for a checkpoint with real progress
        if manifest.exists() and json.loads(manifest.read_text())["counts"]["kept"] >= 200:
            break
        time.sleep(0.02)
    time.sleep(0.2)  # land somewhere inside the next batch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads(manifest.read_text())
    assert killed_at["status"] == "running" and killed_at["counts"]["kept"] < n
    first = [int(x) for x in (root / "generated.log").read_text().split()]

    res = synth_cli("run", "recipes/counter.yaml", "-n", str(n), "--out", "out", cwd=root, **slow)
    assert res.returncode == 0, res.stderr
    assert "Resumed" in res.stdout
    data = (root / "out" / "data.jsonl").read_bytes()
    assert data.endswith(b"\n")
    ids = [json.loads(line)["id"] for line in data.splitlines()]
    assert len(ids) == n == len(set(ids))

    # Finished work was not redone: the second process started at the checkpointed index,
    # so only records generated after the last checkpoint were generated twice.
    second = [int(x) for x in (root / "generated.log").read_text().split()][len(first) :]
    assert min(second) == killed_at["checkpoint"]["index"]
    redone = set(first) & set(second)
    assert len(redone) <= len(first) - killed_at["counts"]["generated"] + 1
    final = json.loads(manifest.read_text())
    assert final["durations"]["processes"] == 2 and final["counts"]["kept"] == n

    # The result is byte for byte what an uninterrupted run writes.
    fresh = asyncio.run(synth.run(root / "recipes/counter.yaml", n=n, out=tmp_path / "fresh"))
    assert fresh.data_path.read_bytes() == data
    assert fresh.rejects_path.read_bytes() == (root / "out" / "rejects.jsonl").read_bytes()
    assert fresh.manifest["counts"] == final["counts"]

    # A finished run re-run does nothing, and says so.
    log_size = (root / "generated.log").stat().st_size
    manifest_bytes = manifest.read_bytes()
    again = synth_cli("run", "recipes/counter.yaml", "-n", str(n), "--out", "out", cwd=root, **slow)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert manifest.read_bytes() == manifest_bytes
    assert (root / "generated.log").stat().st_size == log_size


def test_progress_is_plain_log_lines_when_not_a_terminal_and_quiet_means_quiet(
    tmp_path: Path,
) -> None:
    root = project(tmp_path, {"recipes/counter.yaml": COUNTER})
    # A line per update (the default is one every 5 s, longer than this run), and a run
    # long enough (1500 x 1 ms) to checkpoint, and so report, a few times before the end.
    res = synth_cli(
        "run", "recipes/counter.yaml", "-n", "1500", "--out", "a", cwd=root,
        SYNTH_PROGRESS_SECONDS="0", TEST_COUNTER_DELAY="0.001",
    )  # fmt: skip
    assert res.returncode == 0
    assert re.search(r"^synth: \d+/1500 kept, \d+ generated", res.stderr, re.M), res.stderr
    assert "\r" not in res.stderr
    assert res.stdout.startswith("Kept 1500 of ") and "done" in res.stdout
    res = synth_cli("run", "recipes/counter.yaml", "-n", "300", "--out", "b", "-q", cwd=root)
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""


def test_set_and_input_reach_the_recipe(tmp_path: Path) -> None:
    recipe = "settings: {input: none, cap: 5}\nsteps:\n  - use: test_counter\n    log: ${input}\n"
    recipe += "verify: [{use: test_max_value, max: '${cap}'}]\n"
    root = project(tmp_path, {"recipes/r.yaml": recipe, "in.log": ""})
    res = synth_cli(
        "run",
        "recipes/r.yaml",
        "-n",
        "3",
        "--input",
        "in.log",
        "--set",
        "cap=50",
        "--out",
        "o",
        cwd=root,
    )
    assert res.returncode == 0, res.stderr
    assert (root / "in.log").read_text()  # the source logged into the --input path
    m = json.loads((root / "o" / "manifest.json").read_text())
    assert m["settings"]["cap"] == 50 and m["settings"]["input"] == str(root / "in.log")
