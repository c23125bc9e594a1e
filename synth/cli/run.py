"""`synth run RECIPE -n N --seed S --out DIR`: generate a dataset, resumably."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from synth.cli._progress import Progress, rate_text
from synth.errors import ConfigError

log = logging.getLogger("synth.run")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="generate N records that pass a recipe's verifiers",
        description="Generate N records that pass the recipe's verifier chain into --out. "
        "Running the same command again resumes a killed run, and does nothing for a "
        "finished one.",
    )
    p.add_argument("recipe", help="recipe file, or the name of one in recipes/")
    p.add_argument("-n", type=int, required=True, help="records that must pass")
    p.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    p.add_argument("--out", help="output directory (default out/<recipe name>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe setting; VALUE is parsed as YAML (repeatable)",
    )
    p.add_argument("--input", help="input file for recipes that read one (sets ${input})")
    p.add_argument("--model", help="model for LLM steps (overrides the recipe's model:)")
    p.add_argument("--workers", type=int, default=1, help="processes to shard the run over")
    add_executor_arguments(p)
    p.add_argument("--force", action="store_true", help="overwrite a different run in --out")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached LLM answers")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="estimate LLM calls, tokens and cost from a few sample records; send nothing",
    )
    p.add_argument(
        "--show-prompts",
        type=int,
        metavar="K",
        help="with --dry-run: print the first K rendered prompts (implies --dry-run)",
    )
    p.add_argument(
        "--pilot",
        type=int,
        metavar="N",
        help="run N records for real (in a temporary directory) and estimate pass rate, "
        "calls, tokens, cost and time for -n; writes nothing to --out",
    )
    p.add_argument("--max-attempts", type=int, help="override budget.max_attempts")
    p.add_argument("--max-seconds", type=float, help="override budget.max_seconds")
    p.add_argument("--max-cost-usd", type=float, help="override budget.max_cost_usd")
    p.add_argument("--max-tokens", type=int, help="override budget.max_tokens")
    add_metrics_argument(p)
    p.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="print nothing"
    )
    p.set_defaults(func=run)


def _pilot(args: argparse.Namespace, recipe: Any) -> int:
    import asyncio
    import tempfile

    from synth import api
    from synth.runner.pilot import extrapolate, format_pilot

    if args.pilot < 1:
        raise ConfigError(
            "--pilot must be at least 1", path="--pilot", expected="N >= 1", found=args.pilot,
            fix="pass a few records to try for real, e.g. --pilot 20",
        )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="synth-pilot-") as tmp:
        result = asyncio.run(
            api.run(recipe, n=args.pilot, seed=args.seed, out=tmp, no_cache=args.no_cache)
        )
        print(format_pilot(extrapolate(result.manifest, args.n), recipe.budget))
    return 0


def add_metrics_argument(p: argparse.ArgumentParser) -> None:
    """`--metrics-file` (shared with `synth batch`)."""
    p.add_argument(
        "--metrics-file",
        metavar="PATH",
        help="also write the run's Prometheus metrics to PATH (a node-exporter textfile; "
        "name it *.prom in the collector's directory), replaced atomically",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from synth import api
    from synth.executors import get_executor
    from synth.runner.recipe import parse_overrides

    quiet = getattr(args, "quiet", False)
    api.check_n(args.n)  # before anything loads or is created
    api.check_budget(
        {k: getattr(args, k) for k in ("max_attempts", "max_seconds", "max_cost_usd", "max_tokens")}
    )
    recipe = api.resolve(
        args.recipe, settings=parse_overrides(args.set), model=args.model, input=args.input
    )
    shown = getattr(args, "show_prompts", None)
    if shown is not None and shown < 1:
        raise ConfigError(
            "--show-prompts must be at least 1", path="--show-prompts", expected="K >= 1",
            found=shown, fix="pass how many prompts to print, e.g. --show-prompts 3",
        )  # fmt: skip
    if getattr(args, "dry_run", False) or shown:
        from synth.runner.dryrun import estimate, format_estimate, format_prompts

        est = estimate(recipe, args.n, seed=args.seed, prompts=shown or 0)
        if shown:
            from synth.redaction import is_secret_name, redact, secret_values

            secrets = secret_values(v for k, v in recipe.settings.items() if is_secret_name(k))
            print(redact(format_prompts(est), secrets), end="\n\n")
        print(format_estimate(est, recipe.budget))
        return 0
    if getattr(args, "pilot", None) is not None:
        return _pilot(args, recipe)
    log.info("run %s: n=%d seed=%d out=%s", recipe.name, args.n, args.seed, args.out or "-")
    progress = Progress(args.n, enabled=not quiet)
    try:
        result = asyncio.run(
            api.run(
                recipe,
                n=args.n,
                seed=args.seed,
                out=args.out,
                workers=args.workers,
                executor=get_executor(args.executor, address=args.address),
                shards=args.shards,
                force=args.force,
                no_cache=args.no_cache,
                max_attempts=args.max_attempts,
                max_seconds=args.max_seconds,
                max_cost_usd=args.max_cost_usd,
                max_tokens=args.max_tokens,
                on_progress=progress.update,
            )
        )
    finally:
        progress.close()
    if not result.already_done or not (result.out / "report.html").exists():
        from synth.report.run import write_report  # report.html: a page a person can open

        write_report(result.out)
    log.info("run %s finished: %s", recipe.name, result.stop_reason)
    if getattr(args, "metrics_file", None):
        from synth.report.metrics import Runs, write_textfile

        runs = Runs()
        runs.add_run_dir(result.out)
        log.info("wrote metrics to %s", write_textfile(args.metrics_file, runs))
    if not quiet:
        print(summary(result))
    return 0


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """`--executor`, `--shards`, `--address` (shared with `synth batch`)."""
    p.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where shards run: local (this machine, default) or ray (a Ray cluster; "
        "pip install 'synth[ray]')",
    )
    p.add_argument(
        "--shards",
        type=int,
        help="shards to split the run into (ray default: the cluster's CPUs; local: --workers)",
    )
    p.add_argument(
        "--address",
        help="Ray cluster address, e.g. ray://head:10001 (default: a cluster started on this "
        "machine with `ray start --head`, else a private one)",
    )


def summary(result: Any) -> str:
    """One paragraph a person reads at the end of a run (and a log keeps)."""
    m = result.manifest
    out = result.out
    if result.already_done:
        return (
            f"{out} already holds this finished run ({result.kept} records kept, stopped: "
            f"{result.stop_reason}); nothing to do. Use --force to generate it again, or "
            "raise the budget if it stopped on one."
        )
    counts = m.get("counts", {})
    reasons = counts.get("rejected_by_reason", {})
    why = ", ".join(f"{c} {r}" for r, c in sorted(reasons.items(), key=lambda kv: -kv[1]))
    seconds = float((m.get("durations") or {}).get("total_s", 0.0))
    data = (m.get("files") or {}).get("data.jsonl", {})
    stop = {
        "done": f"done: all {m.get('n')} requested records passed",
        "exhausted": f"the source ran out before {m.get('n')} records passed",
    }.get(str(result.stop_reason), f"stopped by {result.stop_reason} before reaching n")
    parts = [
        f"Kept {result.kept} of {result.generated} generated records"
        + (f" ({result.rejected} rejected: {why})" if result.rejected else "")
        + f" in {seconds:.1f} s ({rate_text(result.kept, seconds)}); {stop}.",
    ]
    if result.resumed:
        parts.append("Resumed an interrupted run; finished work was kept.")
    llm = m.get("llm")
    if isinstance(llm, dict) and llm:
        bits = [f"{k} {v}" for k, v in llm.items() if isinstance(v, int | float)]
        parts.append("LLM: " + ", ".join(bits) + ".")
    parts.append(
        f"Wrote {out / 'data.jsonl'} (sha256 {str(data.get('sha256', ''))[:12]}), "
        f"rejects.jsonl and manifest.json."
    )
    return " ".join(parts)
