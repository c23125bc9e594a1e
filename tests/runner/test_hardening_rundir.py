"""Issue 19: a write that fails (here a real full tmpfs) leaves the run directory as its
last checkpoint left it, with the manifest saying `failed` and why; the same command
resumes it once there is room."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
N = 3000  # about 1.8 MB of card transactions: a 1 MiB disk fills in the second batch


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def synth(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run(
        [sys.executable, "-m", "synth", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_full_disk_leaves_the_last_checkpoint_and_says_failed(small_disk: Path) -> None:
    out = small_disk / "out"
    argv = ("run", "card-transactions", "-n", str(N), "--seed", "3", "--out", str(out), "-q")
    proc = synth(*argv)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "No space left" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "resume" in proc.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed", manifest["status"]
    assert "No space left" in manifest["error"]
    cp = manifest["checkpoint"]
    data = (out / "data.jsonl").read_bytes()
    rejects = (out / "rejects.jsonl").read_bytes()
    assert len(data) == cp["data_bytes"] > 0  # the first batch made it, the second did not
    assert len(rejects) == cp["rejects_bytes"]
    lines = data.decode().splitlines()
    assert data.endswith(b"\n") and all(json.loads(line)["id"] for line in lines)  # no torn line
    assert manifest["counts"]["kept"] == len(lines) < N
    assert not (out / "manifest.json.tmp").exists()

    # Room again: the same command resumes from that checkpoint and finishes exactly.
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    again = synth(*argv)
    assert again.returncode == 0, again.stderr
    final = json.loads((out / "manifest.json").read_text())
    assert final["status"] == "finished" and final["stop_reason"] == "done"
    ids = [json.loads(line)["id"] for line in (out / "data.jsonl").read_text().splitlines()]
    assert len(ids) == N == len(set(ids))
    assert ids[: len(lines)] == [json.loads(line)["id"] for line in lines]
