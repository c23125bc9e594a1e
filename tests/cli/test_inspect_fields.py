"""`synth inspect` measures distinct-2 on the fields the model wrote (from the records'
lineage), or on `--fields`; a field no record has is a clear error."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from synth.cli import main
from synth.records import Record, write_jsonl


def _run_file(tmp_path: Path) -> Path:
    """A demo-like data.jsonl: varied Faker bodies, near-identical model summaries."""
    vocab = [f"w{k}" for k in range(500)]
    records = [
        Record(
            f"r{i}",
            {
                "body": " ".join(random.Random(i).choices(vocab, k=40)),
                "summary": f"The customer has a problem number {i % 3}.",
            },
            {"llm_fields": ["summary"]},
        )
        for i in range(30)
    ]
    path = tmp_path / "data.jsonl"
    write_jsonl(path, records)
    return path


def _inspect(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["inspect", *args, "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


def test_inspect_measures_the_model_written_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_run_file(tmp_path))
    default = _inspect(capsys, path)
    body = _inspect(capsys, path, "--fields", "body")
    assert default["text_fields"] == ["summary"] and body["text_fields"] == ["body"]
    # 30 summaries from 3 templates repeat their bigrams; the old rule measured the body.
    assert default["distinct_2"] < 0.2 < body["distinct_2"]
    assert main(["inspect", path]) == 0
    assert "distinct-2 of summary:" in capsys.readouterr().out


def test_inspect_without_model_fields_measures_all_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text("".join(json.dumps({"a": f"x y {i}", "b": "p q"}) + "\n" for i in range(5)))
    r = _inspect(capsys, str(path))
    assert r["text_fields"] == "all text fields" and 0 < r["distinct_2"] <= 1


def test_inspect_refuses_a_field_no_record_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_run_file(tmp_path))
    assert main(["inspect", path, "--fields", "sumary"]) == 2
    err = capsys.readouterr().err
    assert "no record has the field 'sumary'" in err and "summary" in err
