"""`synth dedup FILE... --out FILE`: exact and near-duplicate removal of JSONL records."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dedup",
        help="drop exact and near-duplicate records (MinHash LSH), keeping real ones",
        description="Remove duplicates from JSONL files (synth records or plain objects), "
        "writing kept lines unchanged and in input order. Exact: normalised text hash. "
        "--near: MinHash LSH on word 5-grams; bands x rows are chosen for --threshold. "
        "In a cluster the record with meta.source 'real' is kept, else the first one.",
    )
    p.add_argument("inputs", nargs="+", help="JSONL files or synth run directories")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.add_argument("--near", action="store_true", help="also remove near duplicates")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.75,
        help="Jaccard similarity for --near (default 0.75 -> 14 bands x 8 rows)",
    )
    p.add_argument("--no-exact", action="store_true", help="skip exact dedup")
    p.add_argument("--dups", metavar="FILE", help="also write dropped records with dup_of")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.curate.dedup import Deduper, LSHParams
    from synth.errors import ConfigError
    from synth.files import atomic_output

    if args.no_exact and not args.near:
        raise ConfigError("nothing to do", expected="--near, or exact dedup (drop --no-exact)")
    files = [_data_file(Path(x)) for x in args.inputs]
    params = LSHParams.for_threshold(args.threshold)
    dd = Deduper(exact=not args.no_exact, near=args.near, params=params)
    dropped: dict[tuple[int, int], Any] = {}
    counts: Counter[str] = Counter()
    for real_pass in (True, False):  # real records first: they win their clusters
        batch: list[tuple[tuple[int, int], str, str]] = []
        for key, obj in _lines(files):
            if _is_real(obj) != real_pass:
                continue
            counts["read"] += 1
            batch.append((key, _text(obj), _id(obj, key)))
            if len(batch) >= 2048:
                _flush(dd, batch, dropped)
                batch = []
        _flush(dd, batch, dropped)
    dups = open(args.dups, "w", encoding="utf-8") if args.dups else None  # noqa: SIM115
    try:
        with atomic_output(args.out) as fh:
            for key, line in _raw(files):
                dup = dropped.get(key)
                if dup is None:
                    fh.write(line if line.endswith("\n") else line + "\n")
                    continue
                counts[dup.kind] += 1
                if dups:
                    dups.write(json.dumps({"line": json.loads(line), "dup_of": dup.of,
                                           "kind": dup.kind}) + "\n")  # fmt: skip
    finally:
        if dups:
            dups.close()
    if not args.quiet:
        kept = counts["read"] - counts["exact"] - counts["near"]
        print(f"kept {kept} of {counts['read']} records ({counts['exact']} exact, "
              f"{counts['near']} near duplicates removed; near: {params.bands} bands x "
              f"{params.rows} rows, P(merge) {params.probability(args.threshold):.2f} at "
              f"Jaccard {args.threshold}) -> {args.out}")  # fmt: skip
    return 0


def _flush(dd: Any, batch: list[tuple[tuple[int, int], str, str]], dropped: dict[Any, Any]) -> None:
    if not batch:
        return
    for (key, _, _), dup in zip(batch, dd.check([b[1] for b in batch], [b[2] for b in batch]),
                                strict=True):  # fmt: skip
        if dup is not None:
            dropped[key] = dup


def _data_file(p: Path) -> Path:
    from synth.curate.inputs import open_batch

    return open_batch(p).data_file


def _raw(files: list[Path]) -> Iterator[tuple[tuple[int, int], str]]:
    for f, file in enumerate(files):
        with open(file, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    yield (f, n), line


def _lines(files: list[Path]) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    from synth.errors import ConfigError

    for key, line in _raw(files):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"malformed JSON: {exc.msg}",
                file=str(files[key[0]]),
                path=f"line {key[1]}",
                expected="one JSON object per line",
                found=line[:80],
                fix="fix or remove that line",
            ) from None
        if not isinstance(obj, dict):
            raise ConfigError("a line is not a JSON object", file=str(files[key[0]]),
                              path=f"line {key[1]}", found=line[:80])  # fmt: skip
        yield key, obj


def _is_real(obj: dict[str, Any]) -> bool:
    meta = obj.get("meta")
    return isinstance(meta, dict) and meta.get("source") == "real"


def _text(obj: dict[str, Any]) -> str:
    from synth.text.lexical import text_of

    return text_of(obj["data"] if isinstance(obj.get("data"), dict) and "id" in obj else obj)


def _id(obj: dict[str, Any], key: tuple[int, int]) -> str:
    rid = obj.get("id")
    return (
        str(rid)
        if isinstance(rid, str) and isinstance(obj.get("data"), dict)
        else f"{key[0]}:{key[1]}"
    )
