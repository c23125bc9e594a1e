"""Parquet that trainers and `datasets` read without surprises: one explicit schema per
export, files and row groups sized for streaming.

Why explicit: `datasets` infers a schema per file. If one file's `meta` is a struct and
another's a string, or a column is all-null in one shard, loading fails or silently casts.
So every export builds a single `pyarrow.Schema` up front (from the format, or, for raw
records, from every row) and writes every file with it; lineage goes into one `meta`
column as a JSON string, whose varying shape never reaches the schema.

Sizes (the defaults, what Hub datasets converge on): a file holds at most 100,000 rows or
about 256 MB, whichever comes first, so a trainer can shard by file and stream one at a
time; row groups hold 10,000 rows, the unit `datasets` and pyarrow read in one go, so
memory stays bounded while reading. Files are named `<prefix>-00000-of-00003.parquet`,
the name pattern the Hub's viewer and `datasets` expect, and are staged in a temp folder
that replaces the target only when complete: a killed export leaves no half folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from synth.errors import ConfigError

ROWS_PER_FILE = 100_000
BYTES_PER_FILE = 256 << 20
ROW_GROUP_ROWS = 10_000

_MSG = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_S = pa.string()
# The columns of each trainer format (synth/curate/export.py builds the rows).
FORMAT_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "openai": [("messages", _MSG)],
    "openai-preference": [
        ("input", pa.struct([("messages", _MSG)])),
        ("preferred_output", _MSG),
        ("non_preferred_output", _MSG),
    ],
    "sharegpt": [
        ("id", _S),
        ("conversations", pa.list_(pa.struct([("from", _S), ("value", _S)]))),
        ("system", _S),
    ],
    "alpaca": [("instruction", _S), ("input", _S), ("output", _S), ("system", _S)],
    "preference": [("prompt", _S), ("chosen", _S), ("rejected", _S)],
    "reward": [("prompt", _S), ("response", _S), ("score", pa.float64())],
    "text": [("text", _S)],
    "messages": [("messages", _MSG)],
    "prompt-completion": [("prompt", _S), ("completion", _S)],
}


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """How big files and row groups get (see the module docstring for why these)."""

    rows_per_file: int = ROWS_PER_FILE
    bytes_per_file: int = BYTES_PER_FILE
    row_group_rows: int = ROW_GROUP_ROWS

    def __post_init__(self) -> None:
        for name in ("rows_per_file", "bytes_per_file", "row_group_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{name} must be at least 1", path=name, found=getattr(self, name)
                )


def format_schema(fmt: str, *, meta: bool = True) -> pa.Schema:
    """The schema of a trainer format (`openai-preference` is OpenAI's DPO shape)."""
    fields = [pa.field(name, t) for name, t in FORMAT_COLUMNS[fmt]]
    return pa.schema(fields + ([pa.field("meta", _S)] if meta else []))


class RecordSchema:
    """The schema of raw record payloads, inferred from every row, not the first file's.

    Each top-level field gets the type pyarrow infers for all its values together; a
    field whose values disagree (a string here, an object there) becomes a string column
    holding JSON for the non-strings, instead of a schema that differs between files."""

    def __init__(self) -> None:
        self.types: dict[str, pa.DataType] = {}
        self.as_json: set[str] = set()
        self._batch: list[Mapping[str, Any]] = []

    def add(self, row: Mapping[str, Any]) -> None:
        self._batch.append(row)
        if len(self._batch) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        names = dict.fromkeys(k for row in self._batch for k in row)
        for name in names:
            if name in self.as_json:
                continue
            try:
                t = pa.array([row.get(name) for row in self._batch]).type  # validates all
                old = self.types.get(name)
                if old is not None and old != t:
                    t = (
                        pa.unify_schemas(
                            [pa.schema([(name, old)]), pa.schema([(name, t)])],
                            promote_options="permissive",
                        )
                        .field(name)
                        .type
                    )
                if not pa.types.is_null(t) and not _writable(t):
                    raise ValueError(name)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                self.as_json.add(name)
                self.types[name] = _S
                continue
            self.types[name] = t
        self._batch = []

    def schema(self, *, meta: bool = True) -> pa.Schema:
        self._flush()
        if meta and "meta" in self.types:
            raise ConfigError(
                "the records have a field called 'meta', the lineage column's name",
                path="data.meta",
                expected="no payload field named meta",
                found="meta",
                fix="export with --no-meta, or rename the field",
            )
        fields = [pa.field(n, _S if pa.types.is_null(t) else t) for n, t in self.types.items()]
        return pa.schema(fields + ([pa.field("meta", _S)] if meta else []))

    def row(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """`data` with the JSON-typed fields encoded, ready for `schema()`."""
        return {
            k: (
                json.dumps(v, ensure_ascii=False, sort_keys=True)
                if k in self.as_json and v is not None and not isinstance(v, str)
                else v
            )
            for k, v in data.items()
        }


def _writable(t: pa.DataType) -> bool:
    """Parquet cannot store an empty struct, and a nested null type loads as a surprise."""
    if pa.types.is_null(t):
        return False
    if pa.types.is_struct(t):
        return t.num_fields > 0 and all(_writable(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _writable(t.value_type)
    return True


def meta_json(record_id: str | None, meta: Mapping[str, Any]) -> str:
    """Lineage as one JSON string: its shape varies by step, the column's type never does."""
    body = {"id": record_id, **meta} if record_id is not None else dict(meta)
    return json.dumps(body, ensure_ascii=False, sort_keys=True, default=str)


class ShardWriter:
    """Rows into `<directory>/<prefix>-NNNNN-of-MMMMM.parquet`, one schema for all files."""

    def __init__(
        self, directory: Path, prefix: str, schema: pa.Schema, sizes: Sizes | None = None
    ) -> None:
        self.directory, self.prefix, self.schema = directory, prefix, schema
        self.sizes = sizes or Sizes()
        self.rows = 0
        self.nbytes = 0  # Arrow (in-memory) bytes: what `datasets` reports as num_bytes
        self._parts: list[Path] = []
        self._buffer: list[Mapping[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._sink: Any = None
        self._in_file = 0

    def write(self, row: Mapping[str, Any]) -> None:
        self._buffer.append(row)
        self.rows += 1
        if len(self._buffer) >= self.sizes.row_group_rows:
            self._flush()

    def write_all(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.write(row)

    def _flush(self) -> None:
        while self._buffer:
            if self._writer is None:
                self._open()
            room = self.sizes.rows_per_file - self._in_file
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            try:
                table = pa.Table.from_pylist(chunk, schema=self.schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                raise ConfigError(
                    f"a row does not fit the export's schema: {exc}",
                    expected=str(self.schema).replace("\n", "; "),
                    fix="every row of one export must have the same shape",
                ) from None
            assert self._writer is not None
            self._writer.write_table(table, row_group_size=self.sizes.row_group_rows)
            self._in_file += len(chunk)
            self.nbytes += table.nbytes
            if self._in_file >= self.sizes.rows_per_file or (
                self._sink.tell() >= self.sizes.bytes_per_file
            ):
                self._close_file()

    def _open(self) -> None:
        path = self.directory / f"{self.prefix}-{len(self._parts):05d}.parquet"
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pq.ParquetWriter(self._sink, self.schema, compression="zstd")
        self._parts.append(path)
        self._in_file = 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None

    def close(self) -> list[Path]:
        """Finish the last file and give every file its `-of-N` name. An empty export
        still writes one (empty) file, so the schema is there for a loader to read."""
        self._flush()
        if not self._parts:
            self._open()
        self._close_file()
        n = len(self._parts)
        final = []
        for i, part in enumerate(self._parts):
            target = part.with_name(f"{self.prefix}-{i:05d}-of-{n:05d}.parquet")
            os.replace(part, target)
            final.append(target)
        return final


@contextlib.contextmanager
def staged_dir(out: Path) -> Iterator[Path]:
    """A temp folder beside `out` that replaces `out` only if the block completes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        if out.exists():
            if not out.is_dir():
                raise ConfigError(
                    "output exists and is not a folder",
                    file=str(out),
                    expected="a folder (Parquet exports are folders of shards)",
                    fix="pass another --out",
                )
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
