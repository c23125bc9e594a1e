"""`synth monitor RUN --anchor REAL`: collapse check of a batch, ok / warn / fail.

Exit codes, so a nightly scheduler can alert: 0 ok, 1 warn, 3 fail; 2 is a usage or
input error (as for every synth command)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EXIT = {"ok": 0, "warn": 1, "fail": 3}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "monitor",
        help="collapse monitor: compare a batch with real anchor data (ok/warn/fail)",
        description="Compute diversity metrics (distinct-n, compression, self-BLEU, rare "
        "n-gram coverage, Vendi, lengths, duplicates) on a sample of a run or JSONL file, "
        "as ratios to a real-vs-real baseline from the anchor set; apply the trend rule "
        "against earlier generations of the same series (history in $SYNTH_STATE_DIR or "
        "./.synth-state) and audit the verifier's effect on the tail (kept vs rejected).",
        epilog="exit codes: 0 ok, 1 warn, 3 fail, 2 usage or input error",
    )
    p.add_argument("target", help="a synth run directory or a JSONL file")
    p.add_argument(
        "--anchor",
        required=True,
        metavar="PATH",
        help="held-out real records (JSONL/CSV/Parquet/folder; the mixer's anchor.jsonl)",
    )
    p.add_argument("--series", help="history series name (default: the run's recipe, or file stem)")
    p.add_argument("--generation", type=int, help="generation index (default: next in series)")
    p.add_argument("--sample-docs", type=int, default=10_000)
    p.add_argument("--self-bleu-sample", type=int, default=1000)
    p.add_argument("--baseline-draws", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--fields",
        metavar="A,B",
        help="data fields to measure (default: the fields the run's model wrote)",
    )
    p.add_argument("--no-audit", action="store_true", help="skip the verifier tail audit")
    p.add_argument("--no-history", action="store_true", help="no trend rule, record nothing")
    p.add_argument("--state-dir", metavar="DIR", help="override $SYNTH_STATE_DIR")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="report path (default: TARGET/monitor_report.json for a run directory)",
    )
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.curate.monitor import MonitorConfig, monitor_path
    from synth.errors import ConfigError
    from synth.files import write_json_atomic
    from synth.text.fields import parse_fields

    for name in ("sample_docs", "self_bleu_sample", "baseline_draws"):
        if getattr(args, name) < 2:
            raise ConfigError(f"--{name.replace('_', '-')} too small", expected=">= 2",
                              found=getattr(args, name))  # fmt: skip
    config = MonitorConfig(sample_docs=args.sample_docs, self_bleu_sample=args.self_bleu_sample,
                           baseline_draws=args.baseline_draws, seed=args.seed)  # fmt: skip
    report = monitor_path(
        args.target,
        args.anchor,
        config=config,
        series=args.series,
        generation=args.generation,
        audit=not args.no_audit,
        history=not args.no_history,
        root=Path(args.state_dir) if args.state_dir else None,
        fields=parse_fields(args.fields, where="command line", path="--fields"),
    )
    target = Path(args.target)
    out = (
        Path(args.out)
        if args.out
        else (target / "monitor_report.json" if target.is_dir() else None)
    )
    if out is not None:
        write_json_atomic(out, report)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    elif not args.quiet:
        print(render(report, out))
    return EXIT[report["status"]]


def render(report: dict[str, Any], out: Path | None) -> str:
    lines = [
        f"{report['status'].upper()}: {report['target']} (series {report['series']!r}, "
        f"generation {report['generation']}, {report['sample_docs']} of {report['docs']} docs "
        f"vs {report['anchor_docs']} anchor docs)",
        f"  measured: {_fields(report.get('fields'))}",
    ]
    for name, m in report["metrics"].items():
        ratio = f"{m['ratio']:.2f}x" if m["ratio"] is not None else "  -  "
        lines.append(f"  {m['status']:<4} {name:<18} {m['value']:>9.4f}  {ratio:>6} real")
    lines += [f"  - {r}" for r in report["reasons"]]
    if out is not None:
        lines.append(f"report: {out}")
    return "\n".join(lines)


def _fields(fields: Any) -> str:
    return ", ".join(fields) if isinstance(fields, list) else str(fields)
