"""`synth batch FILE [--date YYYY-MM-DD]`: run one night of a batch (idempotent)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    from synth.cli.run import add_executor_arguments, add_metrics_argument

    p = sub.add_parser(
        "batch",
        help="run one night of a batch file into out/<batch>/<date>/",
        description="Run every recipe of a batch file for one night. Running the same "
        "night again finishes what is missing and redoes nothing; each night has new "
        "seeds and drops records earlier nights produced. Exit status 1 when a recipe "
        "failed or stopped short, or the collapse monitor failed (alert on it).",
    )
    p.add_argument("file", help="batch file, e.g. batches/nightly.yaml")
    p.add_argument("--date", help="the night, YYYY-MM-DD (default: today, local time)")
    p.add_argument("--out", help="output root (overrides the file's `out:`, default out)")
    p.add_argument("--workers", type=int, default=1, help="processes per recipe run")
    add_executor_arguments(p)
    add_metrics_argument(p)
    p.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print nothing"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from synth.batch import check_date, exit_status, load_batch, run_batch, today
    from synth.executors import get_executor

    date = args.date or today()
    check_date(date)
    batch = load_batch(args.file, out=args.out)
    options: dict[str, Any] = {"workers": args.workers, "shards": args.shards}
    if args.executor != "local" or args.address:
        options["executor"] = get_executor(args.executor, address=args.address)
    manifest = asyncio.run(run_batch(batch, date, run_options=options))
    if getattr(args, "metrics_file", None):
        from synth.report.metrics import Runs, write_textfile

        runs = Runs()
        for name in manifest.get("recipes") or {}:  # tonight's runs, one dir each
            runs.add_run_dir(batch.night_dir(date) / name)
        write_textfile(args.metrics_file, runs)
    if not getattr(args, "quiet", False):
        print(summary(manifest, batch.night_dir(date)))
    return exit_status(manifest)


def summary(m: dict[str, Any], night: Any) -> str:
    lines = [f"batch {m['batch']} {m['date']}: {m['status']}"]
    for name, e in m["recipes"].items():
        mon = (e.get("monitor") or {}).get("status")
        line = (
            f"  {name}: {e.get('status')} ({e.get('this_run', '-')}), kept {e.get('kept', 0)}/"
            f"{e.get('n')}, rejected {e.get('rejected', 0)} ({e.get('seen_before', 0)} seen "
            f"on earlier nights), ${e.get('cost_usd', 0.0):.4f}"
        )
        if mon:
            line += f", monitor {mon}"
        if e.get("error"):
            line += f"\n    error: {e['error'].splitlines()[0]}"
        lines.append(line)
    lines.append(f"wrote {night}/batch.json and {night}/report.html")
    return "\n".join(lines)
