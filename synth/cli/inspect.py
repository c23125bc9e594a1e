"""`synth inspect FILE.jsonl`: counts, per-field statistics, lengths and duplicates."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help="field statistics, lengths and duplicates of a JSONL file",
        description="Summarise a JSONL file of synth records (their `data`) or of plain "
        "JSON objects: per-field type, null rate, distinct values, numeric range, top "
        "values, text lengths, and exact duplicates. Reads the file once, in bounded memory.",
    )
    p.add_argument("file", help="a JSONL file, e.g. out/tx/data.jsonl")
    p.add_argument(
        "--fields",
        metavar="A,B",
        help="fields whose text distinct-2 measures (default: the fields the model wrote, "
        "from the records' lineage; without any, all text fields)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.text.fields import parse_fields

    fields = parse_fields(args.fields, where="command line", path="--fields")
    report = inspect_file(Path(args.file), fields=fields)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    else:
        print(render(report))
    return 0


def inspect_file(path: Path, *, fields: list[str] | None = None) -> dict[str, Any]:
    from synth.errors import ConfigError
    from synth.runner.fieldstats import Profile
    from synth.text.fields import check_present

    if not path.is_file():
        raise ConfigError(
            "file not found",
            file=str(path),
            expected="an existing JSONL file",
            found=str(path),
            fix="pass the data.jsonl of a run, e.g. synth inspect out/tx/data.jsonl",
        )
    metas, rows = _head(path)
    if fields:
        check_present(fields, rows, where=str(path), path="--fields")
    prof = Profile(text_fields=fields or _written(metas))
    lines = records = plain = 0
    bad: list[int] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            lines += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad.append(lineno)
                continue
            if isinstance(obj, dict) and isinstance(obj.get("data"), dict) and "id" in obj:
                records += 1
                prof.add(obj["data"])
            elif isinstance(obj, dict):
                plain += 1
                prof.add(obj)
            else:
                bad.append(lineno)
    out: dict[str, Any] = {
        **prof.summary(),
        "file": str(path),
        "lines": lines,
        "records": records,
        "plain_objects": plain,
        "unreadable_lines": len(bad),
        **({"first_unreadable_line": bad[0]} if bad else {}),
    }
    manifest = path.parent / "manifest.json"
    if manifest.is_file() and path.name == "data.jsonl":
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
            out["run"] = {
                k: m.get(k) for k in ("status", "stop_reason", "n", "seed", "counts") if k in m
            }
        except (json.JSONDecodeError, OSError):
            pass
    return out


def render(r: dict[str, Any]) -> str:
    head = (
        f"{r['file']}: {r['lines']} lines ({r['records']} records, {r['plain_objects']} plain "
        f"objects), {r['duplicates']} exact duplicates, {r['unreadable_lines']} unreadable"
    )
    if r.get("first_unreadable_line"):
        head += f" (first at line {r['first_unreadable_line']})"
    out = [head]
    if "distinct_2" in r:
        measured = r.get("text_fields")
        which = ", ".join(measured) if isinstance(measured, list) else "text fields"
        out.append(f"distinct-2 of {which}: {r['distinct_2']}")
    if run := r.get("run"):
        counts = run.get("counts", {})
        out.append(
            f"run: {run.get('status')}, stop reason {run.get('stop_reason')}, "
            f"{counts.get('kept')} kept / {counts.get('generated')} generated (n={run.get('n')})"
        )
    fields = r.get("fields", {})
    if fields:
        width = max(len(k) for k in fields)
        out.append(f"{'field':<{width}}  {'type':<9} {'null%':>6} {'distinct':>9}  details")
        for name, f in fields.items():
            out.append(
                f"{name:<{width}}  {f['type']:<9} {100 * f['null_rate']:>5.1f}% "
                f"{f['distinct']!s:>9}  {_details(f)}".rstrip()
            )
    return "\n".join(out)


def _head(path: Path, limit: int = 1000) -> tuple[list[Any], list[Any]]:
    """The meta and data of the first records: which fields the model wrote."""
    metas: list[Any] = []
    rows: list[Any] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if len(rows) >= limit:
                break
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("data"), dict) and "id" in obj:
                metas.append(obj.get("meta"))
                rows.append(obj["data"])
            elif isinstance(obj, dict):
                rows.append(obj)
    return metas, rows


def _written(metas: list[Any]) -> list[str] | None:
    from synth.text.fields import model_fields

    return model_fields(m for m in metas if isinstance(m, dict)) or None


def _details(f: dict[str, Any]) -> str:
    bits = []
    if num := f.get("number"):
        bits.append(f"min {num['min']:g}  max {num['max']:g}  mean {num['mean']:g}")
    if length := f.get("length"):
        bits.append(f"length {length['min']:g}-{length['max']:g} (mean {length['mean']:g})")
    if top := f.get("top"):
        bits.append("top: " + ", ".join(f"{json.dumps(v, ensure_ascii=False)} {c}" for v, c in top))
    return "; ".join(bits)
