"""`synth mix`: real data + verified synthetic runs -> sharded training set + report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mix",
        help="mix real data with verified synthetic runs (real floor in every shard)",
        description="Build a training set from real data and synthetic runs without ever "
        "replacing real data: anchor carved out, dedup (exact + MinHash), benchmark "
        "decontamination, collapse-monitor gating, the real floor in every shard. Writes "
        "shard-*.jsonl, manifest.jsonl, anchor.jsonl and mix_report.json to --out.",
    )
    p.add_argument(
        "--real",
        nargs="+",
        required=True,
        metavar="PATH",
        help="real data: JSONL, CSV, Parquet, or a folder of text files",
    )
    p.add_argument(
        "--synthetic",
        nargs="+",
        default=[],
        metavar="PATH",
        help="synth run directories (their data.jsonl) or JSONL files",
    )
    p.add_argument(
        "--eval-sets",
        nargs="+",
        default=[],
        metavar="PATH",
        help="evaluation sets to decontaminate against (files or folders)",
    )
    p.add_argument(
        "--anchor",
        metavar="PATH",
        help="explicit held-out real anchor set (default: carved from --real)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--strategy", choices=["accumulate", "fixed_fraction"], default="accumulate")
    p.add_argument(
        "--real-floor",
        type=float,
        default=0.5,
        help="minimum real token share in every shard (default 0.5)",
    )
    p.add_argument(
        "--max-synthetic-ratio",
        type=float,
        default=1.0,
        help="synthetic tokens <= this x real tokens (accumulate; default 1.0)",
    )
    p.add_argument("--real-fraction", type=float, help="fixed_fraction: real token share")
    p.add_argument("--target-tokens", type=int, help="total token budget (real floor first)")
    p.add_argument("--max-lineage-depth", type=int, default=1)
    p.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept synthetic JSONL records that carry no verdicts",
    )
    p.add_argument("--allow-low-real", action="store_true", help="permit a real floor < 0.25")
    p.add_argument("--near-threshold", type=float, default=0.75, help="MinHash Jaccard threshold")
    p.add_argument("--no-near", action="store_true", help="exact dedup only")
    p.add_argument("--decontam", choices=["gpt3", "drop"], default="gpt3")
    p.add_argument("--anchor-fraction", type=float, default=0.05)
    p.add_argument("--no-monitor", action="store_true", help="do not gate batches on the monitor")
    p.add_argument("--shard-records", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("cleaning of real data (all off by default)")
    g.add_argument("--fix-unicode", action="store_true", help="repair mojibake with ftfy")
    g.add_argument("--strip-html", action="store_true", help="HTML to text")
    g.add_argument("--squash-whitespace", action="store_true")
    g.add_argument(
        "--scrub-pii",
        action="store_true",
        help="replace emails, phones, card numbers, IPs, IBANs (counted)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.curate.decontam import DecontamConfig
    from synth.curate.ingest import Clean
    from synth.curate.mixer import MixConfig, mix

    config = MixConfig(
        strategy=args.strategy,
        max_synthetic_ratio=args.max_synthetic_ratio,
        real_floor=args.real_floor,
        allow_low_real=args.allow_low_real,
        real_fraction=args.real_fraction,
        target_tokens=args.target_tokens,
        max_lineage_depth=args.max_lineage_depth,
        require_verified=not args.allow_unverified,
        dedup_near=not args.no_near,
        near_threshold=args.near_threshold,
        decontam=DecontamConfig(mode=args.decontam),
        anchor_fraction=args.anchor_fraction,
        monitor=not args.no_monitor,
        shard_records=args.shard_records,
        seed=args.seed,
    )
    clean = Clean(unicode=args.fix_unicode, html=args.strip_html,
                  whitespace=args.squash_whitespace, pii=args.scrub_pii)  # fmt: skip
    report = mix(args.real, args.synthetic, out=Path(args.out), config=config,
                 eval_sets=args.eval_sets, anchor=args.anchor, clean=clean)  # fmt: skip
    if not args.quiet:
        print(summary(report, Path(args.out)))
    return 0


def summary(report: dict[str, Any], out: Path) -> str:
    c = report["counts"]
    shards = report["shards"]
    low = min((s["real_fraction"] for s in shards), default=1.0)
    lines = [
        f"mixed {c['real']['selected']} real ({c['real']['tokens']} tokens) + "
        f"{c['synthetic']['selected']} synthetic ({c['synthetic']['tokens']} tokens) "
        f"into {len(shards)} shard(s): real fraction {report['real_fraction']:.3f} overall, "
        f"{low:.3f} in the lowest shard (floor {report['config']['real_floor']})",
        f"anchor held out: {c['real']['anchor']} records",
    ]
    for src, removed in report["removed"].items():
        if removed:
            lines.append(f"removed ({src}): " + ", ".join(f"{k} {v}" for k, v in removed.items()))
    if report["decontam"]["hits"]:
        lines.append("decontamination hits: " + ", ".join(
            f"{k} {v}" for k, v in report["decontam"]["hits"].items()))  # fmt: skip
    for b in report["inputs"]["synthetic"]:
        mon = b.get("monitor")
        if mon and mon["status"] != "ok":
            lines.append(
                f"monitor {mon['status']} for {b['path']}: " + "; ".join(mon["reasons"][:3])
            )
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    lines.append(f"report: {out / 'mix_report.json'}")
    return "\n".join(lines)
