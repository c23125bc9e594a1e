"""`synth select DATA --by ask-llm (--keep F | --threshold T) --out FILE [--model M]`."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_MODEL = "local/smollm2"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "select",
        help="keep the most informative examples of a dataset (Ask-LLM)",
        description="Score every example with the Ask-LLM question (does it contain "
        "informative signal for training a language model? score = P(yes)) and keep the "
        "top fraction or those above a threshold. Scores are written with the output.",
    )
    p.add_argument("data", help="input JSONL (synth records or plain objects)")
    p.add_argument("--by", default="ask-llm", choices=["ask-llm"], help="selection method")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--keep", type=float, help="fraction to keep, e.g. 0.1 for the top 10%%")
    group.add_argument("--threshold", type=float, help="keep examples with score >= this")
    p.add_argument("--out", required=True, help="output JSONL (written atomically)")
    p.add_argument("--model", help=f"judge model (default {DEFAULT_MODEL})")
    p.add_argument("--field", action="append", default=[], help="judge only these fields")
    p.add_argument("--concurrency", type=int, default=8, help="examples scored at once")
    p.add_argument("--no-logprobs", action="store_true", help="use the parsed yes/no only")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached LLM answers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json
    from pathlib import Path

    from synth.errors import ConfigError

    src = Path(args.data)
    if not src.is_file():
        raise ConfigError(
            "input not found",
            path="DATA",
            expected="a JSONL file",
            found=str(src),
            fix="pass an existing data.jsonl",
        )
    if args.keep is not None and not 0 < args.keep <= 1:
        raise ConfigError(
            "--keep must be a fraction in (0, 1]",
            path="--keep",
            expected="e.g. 0.1",
            found=args.keep,
        )
    lines = []
    with open(src, encoding="utf-8") as fh:
        for n, text in enumerate(fh, 1):
            if text.strip() and text.endswith("\n"):
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ConfigError(
                        f"malformed JSON: {exc.msg}",
                        file=str(src),
                        path=f"line {n}",
                        fix="fix or remove the line",
                    ) from exc
                if not isinstance(obj, dict):
                    raise ConfigError("not a JSON object", file=str(src), path=f"line {n}")
                lines.append(obj)
    model = args.model or DEFAULT_MODEL
    kept, scored = asyncio.run(_select(args, lines, model))
    if not getattr(args, "quiet", False):
        ok = [s.score for s in scored if s.score is not None]
        failed = len(scored) - len(ok)
        mean = sum(ok) / len(ok) if ok else 0.0
        print(
            f"Scored {len(ok)} of {len(scored)} examples with {model} (mean P(yes) {mean:.3f}"
            + (f", {failed} failed" if failed else "")
            + f"); kept {kept} in {args.out}"
        )
    return 0


async def _select(args: argparse.Namespace, lines: list[dict[str, Any]], model: str) -> Any:
    from pathlib import Path

    from synth.context import Context
    from synth.curate.selection import annotate, check_failures, choose, score_all, write_atomic
    from synth.files import state_dir
    from synth.llm import client as llm

    client = llm.client_for_run(
        model=model,
        state_dir=state_dir(),
        no_cache=args.no_cache,
        max_cost_usd=None,
        max_tokens=None,
    )
    try:
        ctx = Context(seed=0, recipe_name="select", base_dir=Path.cwd(), llm=client)
        scored = await score_all(
            lines,
            ctx,
            fields=args.field,
            concurrency=args.concurrency,
            logprobs=False if args.no_logprobs else None,
        )
    finally:
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()
    check_failures(scored, file=str(args.data), model=model)
    keep = choose(scored, keep=args.keep, threshold=args.threshold)
    write_atomic(Path(args.out), [annotate(scored[i], model) for i in keep])
    return len(keep), scored
