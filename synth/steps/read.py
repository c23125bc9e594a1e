"""`read`: a source step over an existing file (JSONL, CSV, Parquet), one record per row.

Rows of a JSONL file may be plain objects or synth records (`{"id", "data", "meta"}`, as
`data.jsonl` holds them): a synth record's data is taken and its id kept as the parent,
so perturbing last night's output keeps the lineage. Record i is row i (`meta.index`), so a
resumed run (`ctx.start_index`) skips exactly the rows it already handled.

Parsing runs in a worker thread, a batch of rows at a time, so a big file never blocks the
event loop. pyarrow is imported only when a Parquet file is read. `path` may also be an
`hf://datasets/...` or `s3://bucket/key` URL: it is fetched once (synth/curate/remote.py), in a
worker thread, and read like a local file.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

from synth.context import Context
from synth.curate.remote import is_remote, localize
from synth.errors import ConfigError
from synth.records import Record, record_id
from synth.registry import step

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
FORMATS |= {".parquet": "parquet", ".pq": "parquet"}
_BATCH = 512

SCHEMA = {
    "type": "object",
    "required": ["path"],
    "additionalProperties": False,
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "Relative to the recipe's project folder or absolute; often ${input}.",
        },
        "format": {"enum": ["jsonl", "csv", "parquet"], "description": "Default: from the suffix."},
        "fields": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "source": {"enum": ["real", "synthetic"], "description": "Provenance to record in meta."},
        "infer_types": {
            "type": "boolean",
            "description": "CSV only: turn numbers, true/false and empty cells into JSON types.",
        },
    },
}

Row = tuple[int, dict[str, Any]]  # (line or row number for messages, the object)


@step("read", schema=SCHEMA)
def read(
    *,
    path: str,
    format: str | None = None,  # noqa: A002  (the recipe key users write)
    fields: list[str] | None = None,
    source: str | None = None,
    infer_types: bool = False,
) -> Any:
    """Records from a JSONL, CSV or Parquet file, one per row."""
    _format(Path(path), format)  # an unknown suffix is a config error before any run

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async for r in read_records(
            path, ctx, format=format, fields=fields, source=source, infer_types=infer_types
        ):
            yield r

    return run


async def read_records(
    path: str | Path,
    ctx: Context,
    *,
    format: str | None = None,  # noqa: A002
    fields: list[str] | None = None,
    source: str | None = None,
    infer_types: bool = False,
) -> AsyncIterator[Record]:
    """The records of a file, from row `ctx.start_index` on, until the file ends."""
    file = await asyncio.to_thread(locate, path, ctx.base_dir)
    fmt = _format(file, format)
    batches = _batches(_rows(file, fmt, fields, infer_types), ctx.start_index)
    index = ctx.start_index
    base: dict[str, Any] = {"file": file.name}
    if source:
        base["source"] = source
    try:
        while True:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                return
            for line, obj in batch:
                data, meta = _unwrap(obj)
                meta.update(base, index=index, line=line)
                yield Record(record_id(ctx.recipe_hash, ctx.seed, index), data, meta)
                index += 1
    finally:
        batches.close()


def locate(path: str | Path, base_dir: Path) -> Path:
    if is_remote(path):
        return localize(str(path))
    p = Path(path).expanduser()
    file = p if p.is_absolute() else base_dir / p
    if not file.is_file() and not p.is_absolute() and Path.cwd().joinpath(p).is_file():
        file = Path.cwd() / p
    if not file.is_file():
        raise ConfigError(
            "input file not found",
            file=str(file),
            expected="an existing JSONL, CSV or Parquet file",
            found=str(path),
            fix="pass --input PATH (relative paths start at the recipe's project folder)",
        )
    return file


def _format(file: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    try:
        return FORMATS[file.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of {file.name!r} from its suffix",
            file=str(file),
            expected=f"a file ending in {', '.join(FORMATS)}",
            found=file.suffix or "(no suffix)",
            fix="rename the file, or set `format: jsonl|csv|parquet`",
        ) from None


def _batches(rows: Iterator[Row], skip: int) -> Generator[list[Row], None, None]:
    batch: list[Row] = []
    for i, row in enumerate(rows):
        if i < skip:
            continue
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _rows(file: Path, fmt: str, fields: list[str] | None, infer: bool) -> Iterator[Row]:
    rows = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[fmt](file, fields, infer)
    if fields is None:
        yield from rows
        return
    for line, obj in rows:
        inner = obj["data"] if _is_record(obj) else obj
        missing = [f for f in fields if f not in inner]
        if missing:
            raise ConfigError(
                f"row has no field {missing[0]!r}",
                file=str(file),
                path=f"line {line}" if fmt != "parquet" else f"row {line}",
                expected=f"the fields {', '.join(fields)}",
                found=sorted(inner),
                fix="remove it from `fields:`, or fix the file",
            )
        picked = {f: inner[f] for f in fields}
        yield line, ({**obj, "data": picked} if inner is not obj else picked)


def _lines(fh: Any, file: Path) -> Iterator[str]:
    """The lines of a binary file as text, each decoded as UTF-8 on its own, so a bad
    byte is reported with its line instead of as a decoder traceback."""
    for n, raw in enumerate(fh, 1):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a byte-order mark, as Excel writes
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"line {n} is not UTF-8 text (byte {exc.start + 1} is {raw[exc.start]:#04x})",
                file=str(file),
                path=f"line {n}",
                expected="a UTF-8 text file",
                found=raw[max(0, exc.start - 20) : exc.start + 20],
                fix="convert the file to UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or check "
                "that it is the text file you meant",
            ) from None


def _jsonl(file: Path, fields: list[str] | None, infer: bool) -> Iterator[Row]:
    with open(file, "rb") as fh:
        for n, text in enumerate(_lines(fh, file), 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except RecursionError:
                raise ConfigError(
                    f"line {n} is nested too deeply to read",
                    file=str(file),
                    path=f"line {n}",
                    expected="a JSON object nested less than a few hundred levels",
                    found=text.strip()[:120],
                    fix="flatten that line",
                ) from None
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"line {n} is not valid JSON: {exc.msg} (column {exc.colno})",
                    file=str(file),
                    path=f"line {n}",
                    expected="one JSON object per line",
                    found=text.strip()[:120],
                    fix="fix or delete that line (a file cut off mid-write ends in a partial line)",
                ) from None
            if not isinstance(obj, dict):
                raise ConfigError(
                    f"line {n} is not a JSON object",
                    file=str(file),
                    path=f"line {n}",
                    expected='an object per line, like {"text": ...}',
                    found=text.strip()[:120],
                    fix="wrap each value in an object",
                )
            yield n, obj


def _csv(file: Path, fields: list[str] | None, infer: bool) -> Iterator[Row]:
    with open(file, "rb") as fh:
        reader = csv.reader(_lines(fh, file))
        try:
            header = next(reader, None)
            if header is None:
                return
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise ConfigError(
                        f"line {reader.line_num} has {len(row)} cells, the header {len(header)}",
                        file=str(file),
                        path=f"line {reader.line_num}",
                        expected=f"{len(header)} comma-separated cells",
                        found=row[:10],
                        fix="quote cells that contain commas, or fix the row",
                    )
                values = map(_cell, row) if infer else row
                yield reader.line_num, dict(zip(header, values, strict=True))
        except csv.Error as exc:
            raise ConfigError(
                f"unreadable CSV: {exc}",
                file=str(file),
                path=f"line {reader.line_num}",
                expected="RFC 4180 CSV with a header row",
                fix="fix the quoting on that line",
            ) from None


_INT = re.compile(r"-?(0|[1-9]\d{0,14})")
_FLOAT = re.compile(r"-?(0|[1-9]\d*)\.\d+([eE][-+]?\d+)?")


def _cell(text: str) -> Any:
    """Only what round-trips: `0123` and 19-digit card numbers stay strings."""
    if text == "":
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    return text


def _parquet(file: Path, fields: list[str] | None, infer: bool) -> Iterator[Row]:
    from synth.template.template import plain

    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "reading Parquet needs pyarrow",
            file=str(file),
            fix="pip install pyarrow (or convert the file to JSONL)",
        ) from None
    try:
        pf = pq.ParquetFile(file)
        n = 0
        for batch in pf.iter_batches(batch_size=_BATCH, columns=fields):
            for obj in batch.to_pylist():
                n += 1
                yield n, {k: plain(v) for k, v in obj.items()}
    except ConfigError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ConfigError(
            f"unreadable Parquet file: {exc}",
            file=str(file),
            expected="a Parquet file (and, if `fields:` is set, those columns)",
            fix="check the file and the column names",
        ) from None


def _is_record(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("data"), dict) and "id" in obj and set(obj) <= {"id", "data", "meta"}


def _unwrap(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if not _is_record(obj):
        return obj, {}
    meta: dict[str, Any] = {"parents": [str(obj["id"])]}
    old = obj.get("meta") or {}
    for key in ("source", "template", "generator"):
        if key in old:
            meta[key] = old[key]
    return obj["data"], meta
