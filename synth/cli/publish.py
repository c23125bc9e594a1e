"""`synth publish RUN [RUN ...] --to DIR [--test-fraction F] [--push OWNER/NAME]`."""

from __future__ import annotations

import argparse
from typing import Any

from synth.cli.export import FORMATS


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "publish",
        help="write runs as a Hugging Face dataset folder (and push it to the Hub)",
        description="Write one or more runs (or mixes) as a dataset folder: Parquet shards "
        "under data/ (train, and test with --test-fraction: deterministic for the seed, "
        "no text in both) and a README.md card built from the manifests. "
        "datasets.load_dataset(DIR) loads it as-is. --push uploads it with huggingface_hub "
        "(token from HF_TOKEN or `hf auth login`; HF_ENDPOINT selects another Hub).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run or mix folders, or JSONL files")
    p.add_argument("--to", required=True, metavar="DIR", help="the dataset folder to write")
    p.add_argument(
        "--format",
        default="records",
        choices=("records",) + FORMATS,
        help="row format: records (the payloads as they are; default) or an export format",
    )
    p.add_argument("--test-fraction", type=float, default=0.0, metavar="F")
    p.add_argument("--seed", type=int, help="split seed (default: the first run's seed)")
    p.add_argument("--license", help="the card's license (default: the recipe's, else other)")
    p.add_argument("--name", help="the card's title (pretty_name)")
    p.add_argument("--no-meta", action="store_true", help="leave out the lineage column")
    p.add_argument("--system", help="system prompt to add to every example")
    p.add_argument("--chat-template", metavar="MODEL_DIR|tokenizer_config.json")
    p.add_argument("--push", metavar="OWNER/NAME", help="upload the folder to this Hub repo")
    p.add_argument("--private", action="store_true", help="with --push: a private repo")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.curate.publish import PublishConfig, publish

    template = None
    if args.chat_template:
        from synth.curate.chat_template import load_chat_template

        template = load_chat_template(args.chat_template)
    config = PublishConfig(
        fmt=args.format,
        system=args.system,
        template=template,
        test_fraction=args.test_fraction,
        seed=args.seed,
        license=args.license,
        meta=not args.no_meta,
        pretty_name=args.name,
    )
    result = publish(args.runs, args.to, config)
    quiet = getattr(args, "quiet", False)
    if not quiet:
        splits = ", ".join(f"{s} {n}" for s, n in result.splits.items())
        print(f"Wrote {result.out}/ ({splits}; {result.duplicates} duplicates dropped)")
    if args.push:
        from synth.curate.hub import push

        url = push(result.out, args.push, private=args.private)
        if not quiet:
            print(f"Pushed {result.out}/ to {args.push}: {url}")
    return 0
