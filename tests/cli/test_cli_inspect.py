"""`synth inspect`: statistics a user reads to judge a dataset, on any JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.cli import main


def write_jsonl(path: Path, rows: list[object], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra)
    return path


def inspect_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["inspect", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plain_objects_get_types_nulls_ranges_top_values_and_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"amount": 1.5, "cur": "EUR", "note": "a b c", "tags": ["x"], "addr": {"city": "Oslo"}},
        {"amount": 3, "cur": "USD", "note": None, "tags": [], "addr": {"city": "Rome"}},
        {
            "amount": 4.5,
            "cur": "EUR",
            "note": "a b d",
            "tags": ["x", "y"],
            "addr": {"city": "Oslo"},
        },
        {
            "amount": 4.5,
            "cur": "EUR",
            "note": "a b d",
            "tags": ["x", "y"],
            "addr": {"city": "Oslo"},
        },
    ]
    r = inspect_json(write_jsonl(tmp_path / "x.jsonl", rows, "not json\n"), capsys)
    assert (r["lines"], r["plain_objects"], r["records"], r["unreadable_lines"]) == (5, 4, 0, 1)
    assert r["first_unreadable_line"] == 5 and r["duplicates"] == 1
    f = r["fields"]
    assert f["amount"]["type"] == "float|int" and f["amount"]["number"] == {
        "min": 1.5,
        "max": 4.5,
        "mean": 3.375,
    }
    assert f["cur"]["top"] == [["EUR", 3], ["USD", 1]] and f["cur"]["distinct"] == 2
    assert f["note"]["null_rate"] == 0.25 and f["note"]["length"]["max"] == 5
    assert f["tags"]["length"] == {"min": 0, "max": 2, "mean": 1.25}
    assert f["addr.city"]["distinct"] == 2  # nested objects become dotted fields
    assert 0 < r["distinct_2"] <= 1


def test_records_are_inspected_by_their_data_and_the_run_is_summarised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"id": str(i), "data": {"v": i % 3}, "meta": {"index": i}} for i in range(30)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"status": "finished", "stop_reason": "done", "n": 30, "counts": {"kept": 30}})
    )
    r = inspect_json(tmp_path / "data.jsonl", capsys)
    assert r["records"] == 30 and list(r["fields"]) == ["v"]
    assert r["fields"]["v"]["top"] == [[0, 10], [1, 10], [2, 10]]
    assert r["run"]["stop_reason"] == "done"
    assert main(["inspect", str(tmp_path / "data.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "30 records" in text and "stop reason done" in text and "top: 0 10" in text


def test_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl: file not found" in err and "fix:" in err
