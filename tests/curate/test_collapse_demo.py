"""The end-to-end collapse regression: a fast `make collapse-demo` (replace vs accumulate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth.curate.collapse_demo import demo, draw, gaussian_toy, load_corpus, main, verdict


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))


def test_replace_collapses_and_the_mixer_does_not(tmp_path: Path) -> None:
    results = demo(generations=10, regimes=["replace", "mixer"], n_real=800, work=tmp_path)
    rep, mix = results["replace"], results["mixer"]
    assert rep[-1]["distinct_2"] < 0.5 * rep[0]["distinct_2"]
    assert mix[-1]["distinct_2"] >= 0.85 * mix[0]["distinct_2"]
    assert min(r["rare_recall"] for r in mix) >= 0.85 * mix[0]["rare_recall"]
    assert rep[-1]["rare_recall"] < 0.5 * rep[0]["rare_recall"]
    assert rep[-1]["cross_entropy"] > mix[-1]["cross_entropy"] + 0.3
    # the monitor flags the first and not the second
    assert rep[-1]["monitor"] == "fail"
    assert all(r["monitor"] != "fail" for r in mix)
    checks = verdict(results)
    assert checks["replace_falls_by_more_than_half"] and checks["mixer_within_15pct"]
    # every mixed training set kept the floor
    assert all(r["mixed_real_fraction"] >= 0.5 for r in mix)
    draw(results, gaussian_toy(generations=5, seeds=2), tmp_path / "c.svg")
    assert "<svg" in (tmp_path / "c.svg").read_text()


def test_gaussian_toy_shrinks_only_under_replace() -> None:
    g = gaussian_toy(generations=30, seeds=5)
    assert g["replace"][-1] < 0.4 * g["replace"][0]
    assert g["mixer"][-1] > 0.85 * g["mixer"][0]


def test_bundled_corpus_is_real_varied_text() -> None:
    sents = load_corpus()
    assert len(sents) > 2000
    assert any("abscond" in s.lower() for s in sents)


def test_cli_writes_table_svg_and_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--out", str(tmp_path), "--generations", "2", "--regimes", "replace",
                 "--no-monitor"])  # fmt: skip
    out = capsys.readouterr().out
    assert "distinct-2" in out and "Gaussian toy" in out
    assert (tmp_path / "collapse.svg").is_file() and (tmp_path / "results.json").is_file()
    assert code in (0, 1)
