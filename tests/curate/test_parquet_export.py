"""`synth export --parquet` / `--format parquet`: one schema across files, trainer-sized
files and row groups, lineage as a JSON string column, loadable by `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from publish_fixtures import qa_pairs, write_run

from synth.cli import main
from synth.curate.export import FORMATS, export_parquet
from synth.curate.parquet import ROW_GROUP_ROWS, ROWS_PER_FILE, Sizes


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_records_whose_field_changes_shape_get_one_schema_in_every_file(tmp_path: Path) -> None:
    # `extra` is a string in the first rows and an object later: per-file inference would
    # give two schemas (and `datasets` would refuse to load the folder).
    rows = [
        {
            "id": f"r{i}",
            "data": {
                "q": f"q{i}",
                "extra": "plain" if i < 30 else {"k": i},
                "n": i if i % 2 else None,
            },
            "meta": {"index": i, "parents": ["p"] * (i % 3)},
        }
        for i in range(60)
    ]
    src = _jsonl(tmp_path / "data.jsonl", rows)
    n, files = export_parquet(
        src, "records", tmp_path / "out", sizes=Sizes(rows_per_file=25, row_group_rows=10)
    )
    assert n == 60 and [f.name for f in files] == [
        f"data-0000{i}-of-00003.parquet" for i in range(3)
    ]
    schemas = {str(pq.read_schema(f)) for f in files}
    assert len(schemas) == 1
    assert [pq.ParquetFile(f).metadata.num_row_groups for f in files] == [3, 3, 1]
    ds = datasets.load_dataset(str(tmp_path / "out"), split="train")
    assert ds.num_rows == 60
    assert ds[0]["extra"] == "plain" and json.loads(ds[45]["extra"]) == {"k": 45}
    assert ds.features["n"].dtype == "int64" and ds[0]["n"] is None
    assert json.loads(ds[4]["meta"]) == {"id": "r4", "index": 4, "parents": ["p"]}


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f not in ("text", "preference", "reward")])
def test_every_chat_format_exports_as_parquet_that_datasets_loads(tmp_path: Path, fmt: str) -> None:
    run = write_run(tmp_path / "run", qa_pairs(12))
    out = tmp_path / f"{fmt}.parquet"
    assert (
        main(
            [
                "-q",
                "export",
                str(run),
                "--format",
                fmt,
                "--parquet",
                "--out",
                str(out),
                "--system",
                "Be brief.",
            ]
        )
        == 0
    )
    ds = datasets.load_dataset(str(out), split="train")
    assert ds.num_rows == 12 and "meta" in ds.features
    jsonl = tmp_path / f"{fmt}.jsonl"
    assert (
        main(
            [
                "-q",
                "export",
                str(run),
                "--format",
                fmt,
                "--out",
                str(jsonl),
                "--system",
                "Be brief.",
            ]
        )
        == 0
    )
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert {k: ds[0][k] for k in first} == first  # the same rows as the JSONL export


def test_preference_and_reward_parquet(tmp_path: Path) -> None:
    src = _jsonl(
        tmp_path / "p.jsonl",
        [{"prompt": f"p{i}", "chosen": "a", "rejected": "b", "score": i} for i in range(5)],
    )
    for fmt in ("preference", "reward", "openai"):
        n, files = export_parquet(
            src, fmt, tmp_path / fmt, fields={"response": "chosen"} if fmt == "reward" else None
        )
        assert n == 5
    assert (
        pq.read_schema(tmp_path / "reward" / "data-00000-of-00001.parquet").field("score").type
        == "double"
    )
    openai = pq.read_table(tmp_path / "openai").to_pylist()
    assert openai[0]["preferred_output"] == [{"role": "assistant", "content": "a"}]


def test_no_meta_and_cli_format_parquet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run", qa_pairs(3))
    assert main(["export", str(run), "--format", "parquet", "--no-meta"]) == 0
    out = run / "data.records.parquet"
    assert "Wrote 3 records rows" in capsys.readouterr().out
    assert pq.read_schema(out / "data-00000-of-00001.parquet").names == ["instruction", "response"]


def test_a_failed_export_leaves_the_previous_folder(tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "good.jsonl", [{"prompt": "p", "response": "r"}])
    export_parquet(good, "prompt-completion", tmp_path / "out")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response": "r"}, {"other": 1}])
    with pytest.raises(Exception, match="no prompt field"):
        export_parquet(bad, "prompt-completion", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["data-00000-of-00001.parquet"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_documented_sizes() -> None:
    assert (ROWS_PER_FILE, ROW_GROUP_ROWS, Sizes().bytes_per_file) == (100_000, 10_000, 256 << 20)


_values = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.text(max_size=4),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.sampled_from("ab"), st.integers(0, 3), max_size=2),
)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.dictionaries(st.sampled_from(["x", "y", "z"]), _values, min_size=1),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 7),
)
def test_any_payloads_give_one_schema_and_every_row(
    tmp_path_factory: pytest.TempPathFactory, payloads: list[dict], per_file: int
) -> None:
    tmp = tmp_path_factory.mktemp("p")
    src = _jsonl(tmp / "d.jsonl", [{"id": str(i), "data": p} for i, p in enumerate(payloads)])
    n, files = export_parquet(
        src, "records", tmp / "o", meta=True, sizes=Sizes(rows_per_file=per_file, row_group_rows=3)
    )
    assert n == len(payloads) and len({str(pq.read_schema(f)) for f in files}) == 1
    ids = [json.loads(m)["id"] for f in files for m in pq.read_table(f).column("meta").to_pylist()]
    assert ids == [str(i) for i in range(len(payloads))]
