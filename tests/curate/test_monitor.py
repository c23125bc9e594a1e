"""Collapse monitor: no false alarm on real data, collapse caught, trend rule, tail audit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from collapse_fixtures import language, run_dir, sample, truncate, write_jsonl

from synth.curate.monitor import Anchor, History, MonitorConfig, monitor, tail_audit, trend_status

FAST = MonitorConfig(sample_docs=600, baseline_draws=8, self_bleu_sample=300)
SYNTH = [sys.executable, "-m", "synth.cli"]


@pytest.fixture(scope="module")
def lang() -> np.ndarray:
    return language()


@pytest.fixture(scope="module")
def anchor(lang: np.ndarray) -> Anchor:
    return Anchor.of(sample(lang, 1600, seed=1))


def test_two_real_samples_raise_no_alarm(lang: np.ndarray, anchor: Anchor) -> None:
    rep = monitor(sample(lang, 600, seed=2), anchor, config=FAST)
    assert rep["status"] == "ok", rep["reasons"]
    assert all(m["status"] == "ok" for m in rep["metrics"].values())
    assert 0.9 < rep["metrics"]["distinct_2"]["ratio"] < 1.1


def test_truncated_generator_is_a_failure_on_each_signal(lang: np.ndarray, anchor: Anchor) -> None:
    rep = monitor(sample(truncate(lang), 600, seed=3), anchor, config=FAST)
    assert rep["status"] == "fail"
    m = rep["metrics"]
    for name in ("distinct_2", "self_bleu", "rare_coverage", "compression_ratio"):
        assert m[name]["status"] == "fail", name
    assert m["vendi"]["status"] in ("warn", "fail")  # hashed-bigram Vendi: weaker signal
    assert any("distinct-2" in r for r in rep["reasons"])


def test_duplicates_and_lengths_are_caught(lang: np.ndarray, anchor: Anchor) -> None:
    docs = sample(lang, 300, seed=4)
    rep = monitor(docs + docs[:60], anchor, config=FAST)
    assert rep["metrics"]["exact_dup_rate"]["status"] == "fail"
    short = [" ".join(d.split()[:15]) for d in sample(lang, 400, seed=5)]
    assert monitor(short, anchor, config=FAST)["metrics"]["length_w1"]["status"] == "fail"


def test_ratios_do_not_depend_much_on_sample_size(lang: np.ndarray) -> None:
    big = Anchor.of(sample(lang, 3000, seed=6))
    docs = sample(lang, 1200, seed=7)
    small = monitor(docs, big, config=MonitorConfig(sample_docs=300, baseline_draws=4))
    large = monitor(docs, big, config=MonitorConfig(sample_docs=1100, baseline_draws=4))
    for name in ("distinct_2", "distinct_4", "rare_coverage", "compression_ratio"):
        assert abs(small["metrics"][name]["ratio"] - large["metrics"][name]["ratio"]) < 0.05


@pytest.mark.parametrize(
    ("series", "expected"),
    [  # replace/accumulate experiment: distinct-2 at generation 1 -> 5 or 30 (median of 5 seeds)
        ((0.482, 0.226), "fail"),  # replace by generation 5 (-53%)
        ((0.482, 0.230), "fail"),  # mix-0.10 at generation 30 (-52%)
        ((0.482, 0.321), "warn"),  # accum-sub
        ((0.482, 0.313), "warn"),  # mix-0.25
        ((0.482, 0.380), "warn"),  # mix-0.50
        ((0.482, 0.422), "ok"),  # accumulate (-12%)
        ((0.482, 0.449), "ok"),  # real+syn-1 (-7%)
    ],
)
def test_trend_rule_on_the_reproduction_series(series: tuple[float, float], expected: str) -> None:
    assert trend_status(series) == expected


def test_history_compares_with_the_first_accepted_generation(
    lang: np.ndarray, anchor: Anchor, tmp_path: Path
) -> None:
    hist = History(tmp_path)
    first = monitor(sample(lang, 400, seed=8), anchor, config=FAST, history=hist, series="s")
    assert first["generation"] == 1 and "trend" not in first
    # a mildly narrower generator: fine on absolute thresholds, but drifting
    drift = monitor(sample(truncate(lang, 60), 400, seed=9), anchor, config=FAST, history=hist,
                    series="s")  # fmt: skip
    assert drift["generation"] == 2 and drift["trend"]["since_generation"] == 1
    assert any(r.startswith(("warn: trend", "fail: trend")) for r in drift["reasons"])
    assert [e["generation"] for e in hist.entries("s")] == [1, 2]
    assert hist.entries("other") == []


def _by_typicality(lang: np.ndarray, docs: list[str]) -> np.ndarray:
    """Docs ordered most typical first (mean log-likelihood under the true generator)."""

    def loglik(doc: str) -> float:
        ids = [int(w[1:]) for w in doc.split()]
        return float(np.mean([np.log(lang[a, b]) for a, b in zip(ids, ids[1:], strict=False)]))

    return np.argsort([loglik(d) for d in docs])[::-1]


def test_tail_audit_catches_a_typicality_filter(lang: np.ndarray) -> None:
    docs = sample(lang, 1000, seed=10)
    order = _by_typicality(lang, docs)
    typical = [docs[i] for i in order[:500]]
    atypical = [docs[i] for i in order[500:]]
    audit = tail_audit(typical, atypical)
    assert audit["status"] == "fail" and audit["ratio"] < 0.5 and audit["pass_rate"] == 0.5
    for seed in range(3):
        pick = set(np.random.default_rng(seed).choice(1000, 500, replace=False).tolist())
        kept = [d for i, d in enumerate(docs) if i in pick]
        rejected = [d for i, d in enumerate(docs) if i not in pick]
        assert tail_audit(kept, rejected)["status"] == "ok"


def test_monitor_runs_the_audit_when_given_rejects(lang: np.ndarray, anchor: Anchor) -> None:
    docs = sample(lang, 800, seed=14)
    order = _by_typicality(lang, docs)
    rep = monitor([docs[i] for i in order[:400]], anchor, config=FAST,
                  rejected=[docs[i] for i in order[400:]])  # fmt: skip
    assert rep["tail_audit"]["status"] != "ok"
    assert any("tail audit" in r for r in rep["reasons"])


def _cli(*args: str, cwd: Path, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**__import__("os").environ, "SYNTH_STATE_DIR": str(state)}
    return subprocess.run([*SYNTH, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_cli_exit_codes_and_report(lang: np.ndarray, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "anchor.jsonl", [{"text": t} for t in sample(lang, 800, seed=11)])
    good = run_dir(tmp_path / "good", sample(lang, 300, seed=12))
    run_dir(tmp_path / "bad", sample(truncate(lang), 300, seed=13))
    flags = ["--anchor", "anchor.jsonl", "--baseline-draws", "5", "--self-bleu-sample", "200"]
    ok = _cli("monitor", "good", *flags, cwd=tmp_path, state=tmp_path / "st")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK:")
    report = json.loads((good / "monitor_report.json").read_text())
    assert report["status"] == "ok" and report["series"] == "demo"
    fail = _cli("monitor", "bad", *flags, "--series", "x", cwd=tmp_path, state=tmp_path / "st")
    assert fail.returncode == 3 and "FAIL" in fail.stdout and "distinct-2" in fail.stdout
    assert (tmp_path / "st" / "monitor_history.jsonl").is_file()
    missing = _cli("monitor", "good", "--anchor", "nope.jsonl", cwd=tmp_path, state=tmp_path / "st")
    assert missing.returncode == 2 and "real data not found" in missing.stderr
    assert "Traceback" not in missing.stderr
