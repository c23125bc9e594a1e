"""Nightly batches, as a scheduler runs them: `synth batch FILE --date D` twice for the
same night, then the next night, then a night that must alert."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth.cli import main
from synth.records import read_jsonl
from synth.verifiers.duplicate import key_of

ROOT = Path(__file__).resolve().parents[1]
CARD = str(ROOT / "recipes" / "card-transactions.yaml")
SAMPLE = str(ROOT / "data" / "card-transactions.sample.jsonl")

# Eight possible records: a second night must collide with the first and drop repeats.
TINY_TEMPLATE = """
description: Eight possible records, so that nights collide.
fields:
  colour: {choice: [red, green, blue, grey]}
  size: {choice: [small, large]}
"""
TINY_RECIPE = """
name: tiny
steps:
  - use: faker
    template: tiny
verify:
  - use: exact_duplicate
"""


def project(tmp_path: Path, batch: str) -> Path:
    for folder, name, text in (
        ("templates", "tiny.yaml", TINY_TEMPLATE),
        ("recipes", "tiny.yaml", TINY_RECIPE),
        ("recipes", "repeats.yaml", "steps: [{use: faker, template: tiny}]\n"),
        ("batches", "b.yaml", batch),
    ):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text(text)
    return tmp_path / "batches" / "b.yaml"


def batch(file: Path, date: str, out: Path) -> int:
    return main(["batch", str(file), "--date", date, "--out", str(out), "-q"])


def night(out: Path, date: str, name: str = "b") -> dict:
    return json.loads((out / name / date / "batch.json").read_text())


def contents(run_dir: Path) -> set[int]:
    return {key_of(r, None, True) for r in read_jsonl(run_dir / "data.jsonl")}


def ids(run_dir: Path) -> set[str]:
    return {r.id for r in read_jsonl(run_dir / "data.jsonl")}


def test_same_night_twice_does_nothing_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = project(
        tmp_path,
        f"""
name: b
seed: 3
recipes:
  - recipe: {CARD}
    name: tx
    n: 300
    monitor: {{anchor: {SAMPLE}, sample_docs: 300, baseline_draws: 5}}
    mix: {{real: {SAMPLE}, monitor: false}}
  - recipe: tiny
    n: 4
""",
    )
    out = tmp_path / "out"
    assert batch(file, "2024-05-01", out) == 0
    first = night(out, "2024-05-01")
    assert first["status"] == "ok"
    assert {k: e["kept"] for k, e in first["recipes"].items()} == {"tx": 300, "tiny": 4}
    tx = out / "b" / "2024-05-01" / "tx"
    assert (tx / "report.html").is_file() and (tx / "mixed" / "mix_report.json").is_file()
    files = [tx / "data.jsonl", tx / "monitor_report.json", tx / "mixed" / "mix_report.json"]
    before = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    history = out / "b" / ".monitor" / "monitor_history.jsonl"
    monitored = history.read_text()

    assert batch(file, "2024-05-01", out) == 0
    second = night(out, "2024-05-01")
    assert {e["this_run"] for e in second["recipes"].values()} == {"nothing to do"}
    assert second["invocations"] == 2
    assert {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files} == before
    assert history.read_text() == monitored  # the monitor did not count the night twice

    monkeypatch.chdir(tmp_path)  # the same night, started elsewhere with --out spelled otherwise
    assert batch(Path("batches/b.yaml"), "2024-05-01", Path("out")) == 0
    assert {e["this_run"] for e in night(out, "2024-05-01")["recipes"].values()} == {
        "nothing to do"
    }


def test_next_night_produces_only_new_records(tmp_path: Path) -> None:
    file = project(tmp_path, "name: b\nseed: 1\nrecipes:\n  - {recipe: tiny, n: 4}\n")
    out = tmp_path / "out"
    assert batch(file, "2024-05-01", out) == 0
    assert batch(file, "2024-05-02", out) == 0
    d1, d2 = out / "b" / "2024-05-01" / "tiny", out / "b" / "2024-05-02" / "tiny"
    assert len(ids(d2)) == 4
    assert not ids(d1) & ids(d2)
    assert not contents(d1) & contents(d2)  # a repeat of night 1 never reaches night 2
    m2 = night(out, "2024-05-02")
    entry = m2["recipes"]["tiny"]
    assert entry["seed"] != night(out, "2024-05-01")["recipes"]["tiny"]["seed"]
    assert entry["seen_before"] > 0  # 8 possible records: night 2 met night 1's and dropped them
    rejects = [r.meta["reject_reason"] for r in read_jsonl(d2 / "rejects.jsonl")]
    assert "seen_before" in rejects
    assert m2["diff"]["previous"] == "2024-05-01"
    assert m2["diff"]["recipes"]["tiny"]["kept"] == {"previous": 4, "now": 4, "change": 0}


def test_a_failing_entry_alerts_and_the_others_still_run(tmp_path: Path) -> None:
    file = project(
        tmp_path,
        "name: b\nrecipes:\n  - {recipe: broken, n: 5}\n  - {recipe: tiny, n: 3}\n",
    )
    # It exists (an unknown name is a bad batch file, exit 2) but does not load.
    (tmp_path / "recipes" / "broken.yaml").write_text("steps: [{use: no-such-step}]\n")
    out = tmp_path / "out"
    assert batch(file, "2024-05-01", out) == 1
    m = night(out, "2024-05-01")
    assert m["status"] == "failed" and m["failed"] == ["broken"]
    assert "no-such-step" in m["recipes"]["broken"]["error"]
    assert m["recipes"]["tiny"]["status"] == "done"
    report = (out / "b" / "2024-05-01" / "report.html").read_text()
    assert "broken" in report and "Needs attention" in report


def test_collapse_monitor_failure_alerts_and_blocks_mixing(tmp_path: Path) -> None:
    # 60 records drawn from eight possible ones, against varied real transactions.
    file = project(
        tmp_path,
        f"name: b\nrecipes:\n  - recipe: repeats\n    n: 60\n"
        f"    monitor: {{anchor: {SAMPLE}, baseline_draws: 5}}\n"
        f"    mix: {{real: {SAMPLE}}}\n",
    )
    out = tmp_path / "out"
    assert batch(file, "2024-05-01", out) == 1
    m = night(out, "2024-05-01")
    assert m["status"] == "failed" and m["monitor_failed"] == ["repeats"]
    entry = m["recipes"]["repeats"]
    assert entry["status"] == "done" and entry["monitor"]["status"] == "fail"
    assert entry["monitor"]["reasons"]
    assert "skipped" in entry["mix"]
    assert not (out / "b" / "2024-05-01" / "repeats" / "mixed").exists()


def test_bad_batch_file_names_file_and_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = project(tmp_path, "name: b\nrecipes:\n  - {recipe: tiny, n: zero}\n")
    assert batch(file, "2024-05-01", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "b.yaml" in err and "$.recipes[0].n" in err
    assert not (tmp_path / "out").exists()


def test_killed_night_resumes_to_exactly_n(tmp_path: Path) -> None:
    n = 8_000
    file = project(tmp_path, f"name: b\nrecipes:\n  - {{recipe: {CARD}, name: tx, n: {n}}}\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "synth", "batch", str(file), "--date", "2024-05-01"]
    cmd += ["--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    manifest = out / "b" / "2024-05-01" / "tx" / "manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if json.loads(manifest.read_text())["counts"]["kept"] > 0:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept_at_kill = json.loads(manifest.read_text())["counts"]["kept"]
    assert 0 < kept_at_kill < n, "the kill came too late to test resume"

    assert batch(file, "2024-05-01", out) == 0
    entry = night(out, "2024-05-01")["recipes"]["tx"]
    assert entry["this_run"] == "resumed" and entry["kept"] == n
    assert len(ids(out / "b" / "2024-05-01" / "tx")) == n
