"""Runs -> a Hugging Face dataset folder: `data/<split>-NNNNN-of-MMMMM.parquet` + README.md.

The folder is what `datasets.load_dataset(folder)` and the Hub both read as-is: the card's
YAML names the splits' files (`configs`) and the features, so nothing is inferred twice.

Splits are decided by content, not by position: rows are keyed by their normalised text
(the converted row without lineage, whitespace collapsed, case folded), exact duplicates
are dropped (the first one is kept), and the test split is the `round(F * unique)` keys
that sort first under a hash salted with the seed. So the same runs and seed always give
the same split, no text is in both splits, and adding runs moves no old row across.
Reading is two passes over the runs (keys first, rows second): memory holds one key per
distinct row, never the rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.curate.chat_template import ChatTemplate
from synth.curate.export import FORMATS, convert, parquet_variant, records
from synth.curate.parquet import (
    RecordSchema,
    ShardWriter,
    Sizes,
    format_schema,
    meta_json,
    staged_dir,
)
from synth.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class PublishConfig:
    fmt: str = "records"  # `records` (payloads as they are) or an export format
    fields: Mapping[str, str] = field(default_factory=dict)
    system: str | None = None
    template: ChatTemplate | None = None
    test_fraction: float = 0.0
    seed: int | None = None  # default: the first run's seed
    license: str | None = None  # default: the recipe's, else "other"
    meta: bool = True
    sizes: Sizes = field(default_factory=Sizes)
    pretty_name: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(
                "test fraction out of range",
                path="--test-fraction",
                expected="a number in [0, 1)",
                found=self.test_fraction,
                fix="e.g. --test-fraction 0.1",
            )
        if self.fmt != "records" and self.fmt not in FORMATS:
            convert({}, self.fmt)


@dataclass(frozen=True)
class Source:
    """One input: a run folder (data.jsonl + manifest.json), a mix folder (shard-*.jsonl +
    mix_report.json) or a JSONL file."""

    path: Path
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        return self.path.name if self.path.is_dir() else self.path.stem

    def json(self, name: str) -> dict[str, Any]:
        f = self.path / name
        if not self.path.is_dir() or not f.is_file():
            return {}
        try:
            loaded = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return {}
        return loaded if isinstance(loaded, dict) else {}


def open_source(path: str | Path) -> Source:
    p = Path(path)
    if p.is_dir():
        if (p / "data.jsonl").is_file():
            return Source(p, (p / "data.jsonl",))
        shards = tuple(sorted(p.glob("shard-*.jsonl")))
        if shards:
            return Source(p, shards)
    elif p.is_file():
        return Source(p, (p,))
    raise ConfigError(
        "not a run, a mix or a JSONL file",
        file=str(p),
        path="RUN",
        expected="a folder with data.jsonl (synth run) or shard-*.jsonl (synth mix), or a file",
        found="nothing there"
        if not p.exists()
        else ", ".join(sorted(x.name for x in p.iterdir())[:8]),
        fix="pass the --out folder of `synth run` or `synth mix`",
    )


@dataclass(frozen=True)
class Published:
    out: Path
    splits: dict[str, int]
    nbytes: dict[str, int]
    files: dict[str, list[str]]  # split -> paths relative to `out`
    duplicates: int
    schema: Any  # pyarrow.Schema
    seed: int


Row = tuple[str, str | None, dict[str, Any], dict[str, Any]]  # (where, id, data, meta)


def _rows(sources: list[Source]) -> Iterator[Row]:
    for s in sources:
        for file in s.files:
            for line, rid, data, meta in records(file):
                yield f"{file}:{line}", rid, data, meta


def text_key(row: Mapping[str, Any]) -> bytes:
    """What "the same text" means for dedup and splits: the row without its lineage,
    whitespace collapsed and case folded."""
    body = json.dumps(
        _norm({k: v for k, v in row.items() if k != "meta"}),
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return hashlib.blake2b(body.encode(), digest_size=16).digest()


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def split_keys(keys: list[bytes], fraction: float, seed: int) -> set[bytes]:
    """The test split: `round(fraction * len(keys))` keys (at least one, and never all,
    when asked for and possible), chosen by a seed-salted hash, so deterministic."""
    unique = list(dict.fromkeys(keys))
    if fraction <= 0 or len(unique) < 2:
        return set()
    n = min(len(unique) - 1, max(1, round(fraction * len(unique))))
    salt = str(seed).encode()
    ranked = sorted(unique, key=lambda k: hashlib.blake2b(salt + k, digest_size=16).digest())
    return set(ranked[:n])


def publish(runs: list[str | Path], out: str | Path, config: PublishConfig) -> Published:
    """Write the dataset folder `out` (replaced whole, only when complete)."""
    from synth.curate.card import dataset_card

    if not runs:
        raise ConfigError("no runs given", path="RUN", expected="at least one run folder")
    sources = [open_source(r) for r in runs]
    first = sources[0].json("manifest.json") or sources[0].json("mix_report.json")
    seed = config.seed if config.seed is not None else int(first.get("seed") or 0)

    schema_of = RecordSchema()
    keys: list[bytes] = []
    variant: str | None = None
    for where, rid, data, _meta in _rows(sources):  # pass 1: keys, shape, schema
        row = data if config.fmt == "records" else _convert(data, config, rid, where, schema_of)
        kind = config.fmt if config.fmt == "records" else parquet_variant(config.fmt, row)
        if variant is None:
            variant = kind
        elif kind != variant:
            raise ConfigError(
                "rows of two shapes in one dataset",
                file=where,
                expected=f"{variant} rows like the first one (one schema per dataset)",
                found=kind,
                fix="publish chat records and preference pairs as separate datasets",
            )
        if config.fmt == "records":
            schema_of.add(data)
        keys.append(text_key(row))
    test = split_keys(keys, config.test_fraction, seed)
    if config.fmt == "records":
        schema = schema_of.schema(meta=config.meta)
    else:
        schema = format_schema(variant or config.fmt, meta=config.meta)

    out = Path(out)
    with staged_dir(out) as tmp:
        (tmp / "data").mkdir()
        writers = {"train": ShardWriter(tmp / "data", "train", schema, config.sizes)}
        if test:
            writers["test"] = ShardWriter(tmp / "data", "test", schema, config.sizes)
        seen: set[bytes] = set()
        duplicates = 0
        for (where, rid, data, meta), key in zip(_rows(sources), keys, strict=True):
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            row = _convert(data, config, rid, where, schema_of)
            if config.meta:
                row["meta"] = meta_json(rid, meta)
            writers["test" if key in test else "train"].write(row)
        files = {split: [f"data/{p.name}" for p in w.close()] for split, w in writers.items()}
        result = Published(
            out,
            {s: w.rows for s, w in writers.items()},
            {s: w.nbytes for s, w in writers.items()},
            files,
            duplicates,
            schema,
            seed,
        )
        download = sum(p.stat().st_size for p in (tmp / "data").iterdir())
        card = dataset_card(sources, result, config, download_size=download)
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return result


def _convert(
    data: dict[str, Any],
    config: PublishConfig,
    rid: str | None,
    where: str,
    schema_of: RecordSchema,
) -> dict[str, Any]:
    if config.fmt == "records":
        return schema_of.row(data)
    return convert(
        data,
        config.fmt,
        fields=config.fields,
        system=config.system,
        record_id=rid,
        where=where,
        template=config.template,
    )
