"""The `read` source: JSONL (plain or synth records), CSV and Parquet rows become records
with row-numbered indices; resume skips rows; bad input names the file and line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synth import registry
from synth.context import Context
from synth.errors import ConfigError
from synth.records import Record, record_id, write_jsonl
from synth.streams import aiter_of


def read(tmp_path: Path, start: int = 0, **config: Any) -> list[Record]:
    step_fn = registry.lookup("step", "read").factory(**config)
    ctx = Context(seed=3, recipe_hash="h", base_dir=tmp_path, start_index=start)

    async def go() -> list[Record]:
        return [r async for r in step_fn(aiter_of([]), ctx)]

    return asyncio.run(go())


def test_jsonl_plain_objects(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"row {i}", "n": i}) for i in range(1200)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines[:600]) + "\n\n" + "\n".join(lines[600:]))
    out = read(tmp_path, path="in.jsonl")
    assert len(out) == 1200  # several batches; the blank line is not a row
    assert out[5].data == {"text": "row 5", "n": 5}
    assert out[5].meta["index"] == 5 and out[5].id == record_id("h", 3, 5)
    assert out[700].meta["line"] == 702 and out[700].meta["file"] == "in.jsonl"


def test_resume_skips_rows_already_done(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"n": i}) + "\n" for i in range(10)))
    full = read(tmp_path, path="in.jsonl")
    tail = read(tmp_path, start=7, path="in.jsonl")
    assert [r.to_json() for r in tail] == [r.to_json() for r in full[7:]]


def test_synth_records_keep_their_lineage(tmp_path: Path) -> None:
    rows = [Record(f"id{i}", {"a": i, "b": "x"}, {"source": "real", "index": i}) for i in range(3)]
    write_jsonl(tmp_path / "data.jsonl", rows)
    out = read(tmp_path, path=str(tmp_path / "data.jsonl"), fields=["a"])
    assert [r.data for r in out] == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert out[1].meta["parents"] == ["id1"] and out[1].meta["source"] == "real"


def test_csv_with_and_without_type_inference(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(
        "\ufeffname,amount,card,zip,ok,note\n"
        'Ann,12.50,4111111111111111111,01234,true,"a, b"\n'
        "Bob,7,5500000000000004,99999,false,\n"
    )
    raw = read(tmp_path, path="in.csv")
    assert raw[0].data == {
        "name": "Ann", "amount": "12.50", "card": "4111111111111111111",
        "zip": "01234", "ok": "true", "note": "a, b",
    }  # fmt: skip
    typed = read(tmp_path, path="in.csv", infer_types=True)
    assert typed[0].data["amount"] == 12.5 and typed[0].data["ok"] is True
    assert typed[0].data["card"] == "4111111111111111111"  # too long to be a number
    assert typed[0].data["zip"] == "01234"  # leading zero kept
    assert typed[1].data["amount"] == 7 and typed[1].data["note"] is None
    assert typed[1].meta["line"] == 3


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import datetime

    table = pa.table(
        {
            "text": [f"t{i}" for i in range(1500)],
            "n": list(range(1500)),
            "when": [datetime.datetime(2024, 1, 1, 12, 0)] * 1500,
        }
    )
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=400)
    out = read(tmp_path, start=1000, path="in.parquet", fields=["text", "when"])
    assert len(out) == 500 and out[0].meta["index"] == 1000
    assert out[0].data == {"text": "t1000", "when": "2024-01-01T12:00:00"}


@pytest.mark.parametrize(
    "name, content, where, words",
    [
        ("in.jsonl", '{"a": 1}\n{"a": 2,\n', "line 2", "not valid JSON"),
        ("in.jsonl", '{"a": 1}\n[1, 2]\n', "line 2", "not a JSON object"),
        ("in.jsonl", '{"a": 1}\n{"b": 2}\n', "line 2", "no field 'a'"),
        ("in.csv", "a,b\n1,2\n3\n", "line 3", "1 cells"),
    ],
)
def test_bad_rows_name_file_and_line(
    tmp_path: Path, name: str, content: str, where: str, words: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError) as info:
        read(tmp_path, path=name, fields=["a"] if "no field" in words else None)
    assert info.value.file == str(tmp_path / name)
    assert info.value.path == where and words in info.value.message


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read(tmp_path, path="nope.jsonl")
    assert info.value.file == str(tmp_path / "nope.jsonl") and "not found" in info.value.message
    with pytest.raises(ConfigError, match="format"):
        registry.lookup("step", "read").factory(path="data.xlsx")
    (tmp_path / "rows.txt").write_text('{"a": 1}\n')
    assert read(tmp_path, path="rows.txt", format="jsonl")[0].data == {"a": 1}
