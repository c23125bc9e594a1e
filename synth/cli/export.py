"""`synth export DATA --format openai|sharegpt|alpaca|preference|reward --out FILE`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = ("openai", "sharegpt", "alpaca", "preference", "reward")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="convert a dataset to a trainer's JSONL format",
        description="Convert data.jsonl (synth records or plain JSONL) to OpenAI chat "
        "messages, ShareGPT, Alpaca, preference (prompt, chosen, rejected) or reward "
        "(prompt, response, score) JSONL, loadable with datasets.load_dataset('json', ...). "
        "The output is written atomically.",
    )
    p.add_argument("data", help="input JSONL (e.g. out/<run>/data.jsonl)")
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument("--out", help="output file (default: <data>.<format>.jsonl beside it)")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="ROLE=FIELD",
        help="take ROLE (prompt, response, context, system, chosen, rejected, score) from "
        "FIELD of each record (repeatable)",
    )
    p.add_argument("--system", help="system prompt to add to every example")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.curate.export import ALIASES, export
    from synth.errors import ConfigError

    src = Path(args.data)
    if not src.is_file():
        raise ConfigError(
            "input not found",
            path="DATA",
            expected="a JSONL file",
            found=str(src),
            fix="pass the data.jsonl of a run, e.g. out/<recipe>/data.jsonl",
        )
    fields: dict[str, str] = {}
    for pair in args.map:
        role, sep, field = pair.partition("=")
        if not sep or role not in ALIASES or not field:
            raise ConfigError(
                "malformed --map",
                path="--map",
                expected=f"ROLE=FIELD with ROLE one of {', '.join(ALIASES)}",
                found=pair,
                fix="e.g. --map prompt=question --map response=answer",
            )
        fields[role] = field
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}.{args.format}.jsonl")
    n = export(src, args.format, out, fields=fields, system=args.system)
    if not getattr(args, "quiet", False):
        print(f"Wrote {n} {args.format} examples to {out}")
    return 0
