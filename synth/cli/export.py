"""`synth export RUN --format openai|sharegpt|alpaca|preference|reward|messages|
prompt-completion|text|parquet [--parquet] --out PATH`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

FORMATS = (
    "openai",
    "sharegpt",
    "alpaca",
    "preference",
    "reward",
    "messages",
    "prompt-completion",
    "text",
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="convert a dataset to a trainer's JSONL format",
        description="Convert data.jsonl (synth records or plain JSONL) to OpenAI chat "
        "messages, ShareGPT, Alpaca, preference (prompt, chosen, rejected) or reward "
        "(prompt, response, score), TRL messages or prompt-completion, or text rendered by a "
        "model's chat template, as JSONL loadable with datasets.load_dataset('json', ...). "
        "--format parquet writes the records themselves as Parquet; --parquet writes any "
        "format as Parquet shards (one schema; 100k rows / ~256 MB per file, 10k-row row "
        "groups; lineage in a JSON `meta` column unless --no-meta). Written atomically.",
    )
    p.add_argument("data", help="a run folder (out/<run>) or a JSONL file (its data.jsonl)")
    p.add_argument("--format", required=True, choices=FORMATS + ("parquet",), help="output format")
    p.add_argument(
        "--out",
        help="output file, or folder for Parquet (default: beside the data, "
        "<data>.<format>.jsonl or <data>.<format>.parquet/)",
    )
    p.add_argument("--parquet", action="store_true", help="write Parquet shards, not JSONL")
    p.add_argument(
        "--no-meta", action="store_true", help="Parquet: leave out the lineage column `meta`"
    )
    p.add_argument(
        "--chat-template",
        metavar="MODEL_DIR|tokenizer_config.json",
        help="for --format text: the model whose chat template renders each conversation",
    )
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
    if src.is_dir():
        src = src / "data.jsonl"
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
    template = None
    if args.chat_template:
        from synth.curate.chat_template import load_chat_template

        template = load_chat_template(args.chat_template)
    parquet = args.parquet or args.format == "parquet"
    fmt = "records" if args.format == "parquet" else args.format
    quiet = getattr(args, "quiet", False)
    if parquet:
        from synth.curate.export import export_parquet

        out = Path(args.out) if args.out else src.with_name(f"{src.stem}.{fmt}.parquet")
        n, files = export_parquet(
            src,
            fmt,
            out,
            fields=fields,
            system=args.system,
            template=template,
            meta=not args.no_meta,
        )
        if not quiet:
            print(f"Wrote {n} {fmt} rows to {out}/ ({len(files)} Parquet file(s))")
        return 0
    if fmt == "records":
        raise ConfigError("unreachable")  # pragma: no cover
    out = Path(args.out) if args.out else src.with_name(f"{src.stem}.{fmt}.jsonl")
    n = export(src, fmt, out, fields=fields, system=args.system, template=template)
    if not quiet:
        print(f"Wrote {n} {fmt} examples to {out}")
    return 0
