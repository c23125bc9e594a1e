"""`synth cache stats|clear`: look at or empty the shared LLM response cache."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "cache",
        help="show or clear the LLM response cache",
        description="The response cache every run shares (in $SYNTH_STATE_DIR, default "
        "./.synth-state): a re-run is answered from it instead of paying again.",
    )
    p.add_argument("action", choices=["stats", "clear"], help="what to do")
    p.add_argument(
        "--state-dir", help="state directory (default: $SYNTH_STATE_DIR or ./.synth-state)"
    )
    p.add_argument("--model", help="clear: only this model's answers")
    p.add_argument("--json", action="store_true", help="stats: print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.files import state_dir
    from synth.llm.cache import FILENAME, ResponseCache

    path = Path(args.state_dir or state_dir()) / FILENAME
    if not path.exists():
        print(f"no response cache at {path} (nothing cached yet)")
        return 0
    cache = ResponseCache(path)
    try:
        if args.action == "clear":
            removed = cache.clear(model=args.model)
            what = f"{args.model} answers" if args.model else "answers"
            print(f"removed {removed} cached {what} from {path}")
            return 0
        stats = cache.stats()
    finally:
        cache.close()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(f"{stats['path']}: {stats['entries']} answers, {stats['bytes'] / 1e6:.2f} MB")
    print(
        f"  a re-run of all of them would otherwise cost ${stats['cost_usd_saved_per_rerun']:.4f}"
    )
    for model, s in stats["by_model"].items():
        print(
            f"  {model}: {s['entries']} answers, {s['input_tokens']} in / "
            f"{s['output_tokens']} out tokens, ${s['cost_usd']:.4f}"
        )
    return 0
