"""`synth report DIR`: (re)write the HTML report of a run or of a batch night."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write report.html for a run directory or a batch night",
        description="Write a self-contained report.html (no network needed to view it) for "
        "a run directory (data.jsonl, rejects.jsonl, manifest.json) or a batch night "
        "(out/<batch>/<date>/).",
    )
    p.add_argument("dir", help="a run directory or a batch night directory")
    p.add_argument("--out", help="where to write the HTML (default DIR/report.html)")
    p.add_argument(
        "--fields",
        metavar="A,B",
        help="fields that lengths and diversity measure (default: the fields the model "
        "wrote, from the records' lineage; without any, each record's text)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synth.errors import ConfigError
    from synth.text.fields import parse_fields

    fields = parse_fields(getattr(args, "fields", None), where="command line", path="--fields")
    target = Path(args.dir)
    if (target / "batch.json").is_file():
        from synth.report.batch import write_batch_report

        path = write_batch_report(target, out=args.out)
    elif (target / "manifest.json").is_file():
        from synth.report.run import write_report

        path = write_report(target, out=args.out, fields=fields)
    else:
        raise ConfigError(
            "not a run directory or a batch night",
            path="DIR",
            expected="a folder with manifest.json (a run) or batch.json (a batch night)",
            found=str(target),
            fix="pass the --out folder of `synth run`, or out/<batch>/<date>/",
        )
    if not getattr(args, "quiet", False):
        print(path)
    return 0
