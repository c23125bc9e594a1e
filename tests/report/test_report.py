"""report.html: what a person reads after a run. Built from real engine runs, checked for
what it must show and for being safe and self-contained."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synth import api
from synth.cli import main
from synth.records import Record, write_jsonl
from synth.report.run import write_report

ROOT = Path(__file__).resolve().parents[2]
RECIPE = {
    "name": "tx-report",
    "steps": [{"use": "faker", "template": "card-transactions"}],
    "verify": [
        "card-transaction-schema",
        {"use": "regex", "name": "usd-only", "field": "currency", "pattern": "^USD$"},
    ],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    recipe = api.resolve({**RECIPE}, settings=None)
    asyncio.run(api.run(recipe, n=120, seed=4, out=out))
    return out


def test_report_shows_counts_reasons_charts_and_samples(run_dir: Path) -> None:
    path = write_report(run_dir)
    html = path.read_text()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["rejected"] > 0  # non-USD transactions were rejected
    assert f">{counts['kept']:,}<" in html and f">{counts['rejected']:,}<" in html
    for reason, count in counts["rejected_by_reason"].items():
        row = re.search(rf"<td>usd-only</td><td class=\"reason\">{reason}</td><td class=\"n\">"
                        rf"{count:,}</td>", html)  # fmt: skip
        assert row, f"no row for usd-only / {reason}"
    assert html.count("<svg") >= 2  # rejections and lengths, at least
    assert "Record length" in html and "Rejections by verifier and reason" in html
    assert html.count("<details>") >= 2 * 12  # kept and rejected samples
    assert "&#34;verdicts&#34;" in html  # lineage is shown with each sample
    summary = json.loads((run_dir / "report.json").read_text())
    assert summary["kept"] == counts["kept"] and 0 < summary["diversity"]["distinct_2"] <= 1


def test_report_is_self_contained_and_inert(run_dir: Path) -> None:
    html = write_report(run_dir).read_text()
    # Only the record browser's own two blocks: its data (never executed) and its script,
    # which the CSP pins by hash so that no other script can run.
    assert html.lower().count("<script") == 2 and "script-src 'sha256-" in html
    assert not re.search(r"https?://", html), "a report must not fetch or link anything"
    assert not re.search(r"\b(src|href)=\"(?!#)", html)
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_record_text_is_escaped(tmp_path: Path) -> None:
    evil = "</pre><script>alert(1)</script><svg onload=alert(2)>"
    write_jsonl(tmp_path / "data.jsonl", [Record("a", {"text": evil}, {"index": 0})])
    verdict = {"verifier": evil, "ok": False, "reason": "x", "detail": evil}
    meta = {"index": 1, "reject_reason": 'x"><script>y', "verdicts": [verdict]}
    bad = Record("b", {"text": evil}, meta)
    write_jsonl(tmp_path / "rejects.jsonl", [bad])
    (tmp_path / "manifest.json").write_text(json.dumps({"recipe": {"name": evil}}))
    html = write_report(tmp_path).read_text()
    assert html.count("<script") == 2 and "<svg onload" not in html  # the browser's own two
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_of_a_run_still_being_written(tmp_path: Path) -> None:
    lines = [
        Record(f"r{i}", {"text": f"record {i} " * 3}, {"index": i}).to_json() for i in range(30)
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n" + '{"id": "half-written-xyz", "da')
    (tmp_path / "manifest.json").write_text('{"status": "running", "n": 100, "counts": {"kept": 30')
    html = write_report(tmp_path).read_text()  # half-written manifest and last line
    assert "record 29" in html or "Sample of kept records" in html
    assert "half-written-xyz" not in html


def test_trend_across_nights(tmp_path: Path) -> None:
    for day, spread in (("2024-05-01", 40), ("2024-05-02", 20), ("2024-05-03", 8)):
        night = tmp_path / "nightly" / day / "tx"
        night.mkdir(parents=True)
        recs = [Record(f"{day}-{i}", {"text": f"word{i % spread} other{i % 7} x"}, {"index": i})
                for i in range(80)]  # fmt: skip
        write_jsonl(night / "data.jsonl", recs)
        (night / "manifest.json").write_text(json.dumps({"recipe": {"name": "tx"}, "n": 80}))
        html = write_report(night).read_text()
    assert "Diversity across nights" in html and "2024-05-01" in html and "2024-05-03" in html
    first = json.loads((tmp_path / "nightly/2024-05-01/tx/report.json").read_text())
    last = json.loads((tmp_path / "nightly/2024-05-03/tx/report.json").read_text())
    assert last["diversity"]["distinct_2"] < first["diversity"]["distinct_2"]


def test_synth_report_command(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "elsewhere.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>")
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_score_histogram_for_graded_verifiers(tmp_path: Path) -> None:
    def rec(i: int, score: float, ok: bool) -> Record:
        verdict = {"verifier": "judge", "ok": ok, "score": score, "reason": "" if ok else "low"}
        meta = {"index": i, "verdicts": [verdict], **({} if ok else {"reject_reason": "low"})}
        return Record(f"r{i}", {"text": f"answer {i}"}, meta)

    write_jsonl(tmp_path / "data.jsonl", [rec(i, 3 + i % 3, True) for i in range(30)])
    write_jsonl(tmp_path / "rejects.jsonl", [rec(100 + i, 1 + i % 2, False) for i in range(10)])
    (tmp_path / "manifest.json").write_text(json.dumps({"recipe": {"name": "judged"}}))
    html = write_report(tmp_path).read_text()
    assert 'data-chart="scores: judge"' in html and "Scores given by judge" in html
