"""The Python API: `await synth.run(...)` writes a run directory, `synth.stream(...)`
yields passing records without writing anything. The CLI is a thin layer over these."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
from synth.executors import Executor, get_executor
from synth.records import Record
from synth.runner.engine import RunLimits, Tally, check_judges, open_llm, outcomes
from synth.runner.recipe import Recipe, from_dict, load
from synth.runner.rundir import RunDir
from synth.runner.shard import (
    Progress,
    RunResult,
    ShardJob,
    base_manifest,
    context_for,
    run_one,
)
from synth.runner.shard import plan as plan_shards

RecipeRef = str | Path | Recipe | dict[str, Any]
MAX_N = 10**9  # records per run: far past any dataset, well inside every counter
# Budget overrides: (kind, smallest, largest); the recipe schema's `budget:` rules, plus
# a ceiling so that a typo cannot overflow the counters that are derived from them.
_BUDGET_RANGES: dict[str, tuple[type, float, float]] = {
    "max_attempts": (int, 1, 10**12),
    "max_seconds": (float, 0, 10**9),  # exclusive minimum: a run needs some time
    "max_cost_usd": (float, 0, 10**9),
    "max_tokens": (int, 1, 10**15),
}


async def run(
    recipe: RecipeRef,
    *,
    n: int,
    seed: int = 0,
    out: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    model: str | None = None,
    input: str | Path | None = None,
    workers: int = 1,
    executor: str | Executor = "local",
    shards: int | None = None,
    force: bool = False,
    no_cache: bool = False,
    max_attempts: int | None = None,
    max_seconds: float | None = None,
    max_cost_usd: float | None = None,
    max_tokens: int | None = None,
    on_progress: Progress | None = None,
) -> RunResult:
    """Generate `n` records that pass the recipe's verifiers into `out` (default
    `out/<recipe name>`). Re-running with the same arguments resumes a killed run and does
    nothing for a finished one; a directory holding another run is refused unless `force`.
    `executor="ray"` runs `shards` shards (default: the cluster's CPUs) as Ray tasks;
    the records are the ones the local executor writes for the same number of shards."""
    check_n(n)
    if workers < 1:
        raise ConfigError("workers must be at least 1", path="--workers", found=workers)
    if shards is not None and shards < 1:
        raise ConfigError("shards must be at least 1", path="--shards", found=shards)
    exe = get_executor(executor)
    rec = resolve(recipe, settings=settings, model=model, input=input)
    budget = _budget(rec, max_attempts, max_seconds, max_cost_usd, max_tokens)
    if rec.needs_llm:  # before anything is created: a missing key is not worth a folder
        from synth.llm.client import check_credentials

        check_credentials(rec.models)
    attempts = budget["max_attempts"] or rec.budget.attempts_for(n)
    workers = await exe.shard_count(workers=workers, shards=shards)  # shards: the run's identity
    plan = plan_shards(n, workers, attempts)
    out_dir = Path(out) if out is not None else Path("out") / rec.name
    job = ShardJob.of(rec, seed=seed, n=n, budget=budget, no_cache=no_cache)
    identity = {"recipe_hash": rec.hash, "seed": seed, "n": n, "shard": None, "workers": workers}
    await check_judges(rec, no_cache=no_cache)  # a refused judge leaves no run behind
    top = RunDir(out_dir, identity, force=force)
    state = top.open(base_manifest(rec, seed=seed, n=n, budget=budget, workers=workers))
    try:
        if workers == 1 and exe.in_process:
            result = await run_one(
                rec,
                plan[0],
                top,
                state,
                budget=budget,
                seed=seed,
                no_cache=no_cache,
                on_progress=on_progress,
            )
        elif state.finished:
            result = RunResult(out_dir, state.manifest, True, True)
        else:
            manifest = await exe.run(
                job, plan, top, elapsed_before=state.elapsed, on_progress=on_progress
            )
            result = RunResult(out_dir, manifest, resumed=state.resumed)
    finally:
        top.close()
    return await _after_run(rec, result, seed=seed)


async def _after_run(rec: Recipe, result: RunResult, *, seed: int) -> RunResult:
    """A recipe's `monitor:` then `mix:` sections, on a finished run. A batch the monitor
    fails is not mixed (the mixer refuses `fail` batches); the reports sit in the run dir."""
    if result.stop_reason != "done" or not (rec.monitor or rec.mix):
        return result
    if rec.monitor:
        from synth.curate.monitor import monitor_from_config

        report = await asyncio.to_thread(
            monitor_from_config, rec.monitor, result.out, base_dir=rec.base_dir, seed=seed
        )
        result = dataclasses.replace(result, monitor=report)
    if rec.mix and (result.monitor or {}).get("status") != "fail":
        from synth.curate.mixer import mix_from_config

        report = await asyncio.to_thread(
            mix_from_config, rec.mix, result.out, base_dir=rec.base_dir, seed=seed
        )
        result = dataclasses.replace(result, mix=report)
    return result


async def stream(
    recipe: RecipeRef,
    *,
    n: int,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
    model: str | None = None,
    input: str | Path | None = None,
    no_cache: bool = False,
    max_attempts: int | None = None,
    max_seconds: float | None = None,
) -> AsyncIterator[Record]:
    """Yield up to `n` passing records as they are verified, writing nothing. The records
    (ids and data) are the ones `run` with the same arguments writes to `data.jsonl`."""
    check_n(n)
    rec = resolve(recipe, settings=settings, model=model, input=input)
    budget = _budget(rec, max_attempts, max_seconds, None, None)
    limits = RunLimits(
        n=n,
        max_attempts=budget["max_attempts"] or rec.budget.attempts_for(n),
        max_seconds=budget["max_seconds"],
    )
    llm = open_llm(rec, no_cache=no_cache)
    ctx = context_for(rec, seed=seed, llm=llm, start_index=0, run_dir=None)
    try:
        async for outcome in outcomes(rec, ctx, limits, Tally()):
            if outcome.ok:
                yield outcome.record
    finally:
        if llm is not None:
            await llm.aclose()


def resolve(
    recipe: RecipeRef,
    *,
    settings: dict[str, Any] | None = None,
    model: str | None = None,
    input: str | Path | None = None,
) -> Recipe:
    """A validated `Recipe` from a path, a name in `recipes/`, a dict, or a `Recipe`
    (re-resolved when settings or the model are overridden)."""
    overrides = dict(settings or {})
    if input is not None:
        path = Path(input)
        if not path.exists():
            raise ConfigError(
                "input file not found",
                file=str(path),
                path="--input",
                expected="an existing JSONL, CSV or Parquet file",
                found=str(input),
                fix="check the path (relative paths are taken from the current directory)",
            )
        overrides["input"] = str(path.resolve())
    if isinstance(recipe, Recipe):
        if not overrides and model is None:
            return recipe
        return from_dict(
            recipe.raw,
            file=recipe.file,
            base_dir=recipe.base_dir,
            settings={**recipe.overrides, **overrides},
            model=model,
        )
    if isinstance(recipe, dict):
        return from_dict(recipe, settings=overrides, model=model)
    return load(recipe, settings=overrides, model=model)


def check_n(n: Any) -> None:
    """`n` is a whole number of records from 1 to `MAX_N`."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise ConfigError(
            "n must be at least 1 and at most 1,000,000,000 (a whole number of records)",
            path="-n",
            expected=f"an integer from 1 to {MAX_N:,}",
            found=n,
            fix="ask for the records you need; run again with a larger n to add more",
        )


def check_budget(overrides: dict[str, Any]) -> None:
    """Budget overrides (`--max-seconds` ...) follow the recipe schema's `budget:` rules."""
    import math

    for name, value in overrides.items():
        if value is None:
            continue
        kind, lo, hi = _BUDGET_RANGES[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        whole = isinstance(value, int) or kind is float
        ok = number and whole and math.isfinite(value) and lo <= value <= hi
        if ok and name == "max_seconds":
            ok = value > 0
        if not ok:
            bound = "more than 0" if name == "max_seconds" else f"at least {lo:g}"
            raise ConfigError(
                f"{name} must be {bound} and at most {hi:g}",
                path=f"--{name.replace('_', '-')}",
                expected=f"{'an integer' if kind is int else 'a number'} {bound}, at most {hi:g}",
                found=value,
                fix=f"drop --{name.replace('_', '-')} to use the recipe's budget, or give a "
                "positive limit",
            )


def _budget(
    rec: Recipe,
    max_attempts: int | None,
    max_seconds: float | None,
    max_cost_usd: float | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    check_budget(
        {
            "max_attempts": max_attempts,
            "max_seconds": max_seconds,
            "max_cost_usd": max_cost_usd,
            "max_tokens": max_tokens,
        }
    )
    b = rec.budget
    return {
        "max_attempts": max_attempts if max_attempts is not None else b.max_attempts,
        "max_seconds": max_seconds if max_seconds is not None else b.max_seconds,
        "max_cost_usd": max_cost_usd if max_cost_usd is not None else b.max_cost_usd,
        "max_tokens": max_tokens if max_tokens is not None else b.max_tokens,
    }


__all__ = ["RunResult", "resolve", "run", "stream"]
