"""The Python API: `await synth.run(...)` writes a run directory, `synth.stream(...)`
yields passing records without writing anything. The CLI is a thin layer over these."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import shards
from .context import Context
from .engine import COMPLETE, MAX_ATTEMPTS, MAX_SECONDS, Clock, Limits, Tally, open_llm, outcomes
from .errors import ConfigError
from .executors import Executor, get_executor
from .recipe import Recipe, from_dict, load
from .records import Record, read_jsonl
from .shards import plan as plan_shards
from .sink import DATA, REJECTS, RunDir

RecipeRef = str | Path | Recipe | dict[str, Any]
_SECRETISH = ("key", "token", "secret", "password")
MAX_N = 10**9  # records per run: far past any dataset, well inside every counter
# Budget overrides: (kind, smallest, largest); the recipe schema's `budget:` rules, plus
# a ceiling so that a typo cannot overflow the counters that are derived from them.
_BUDGET_RANGES: dict[str, tuple[type, float, float]] = {
    "max_attempts": (int, 1, 10**12),
    "max_seconds": (float, 0, 10**9),  # exclusive minimum: a run needs some time
    "max_cost_usd": (float, 0, 10**9),
    "max_tokens": (int, 1, 10**15),
}


@dataclass(frozen=True, slots=True)
class RunResult:
    """What `run` did. `manifest` is the content of `manifest.json`."""

    out: Path
    manifest: dict[str, Any]
    resumed: bool = False
    already_done: bool = False  # the directory held this finished run; nothing was done
    resumed_from: dict[str, Any] = field(default_factory=dict)
    monitor: dict[str, Any] | None = None  # the recipe's `monitor:` report, if it has one
    mix: dict[str, Any] | None = None  # the recipe's `mix:` report, if it has one

    @property
    def kept(self) -> int:
        return int(self.manifest.get("counts", {}).get("kept", 0))

    @property
    def generated(self) -> int:
        return int(self.manifest.get("counts", {}).get("generated", 0))

    @property
    def rejected(self) -> int:
        return int(self.manifest.get("counts", {}).get("rejected", 0))

    @property
    def stop_reason(self) -> str | None:
        return self.manifest.get("stop_reason")

    @property
    def data_path(self) -> Path:
        return self.out / DATA

    @property
    def rejects_path(self) -> Path:
        return self.out / REJECTS

    def records(self) -> Iterator[Record]:
        return read_jsonl(self.data_path)


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
    on_progress: shards.Progress | None = None,
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
    attempts = budget["max_attempts"] or rec.budget.attempts_for(n)
    workers = await exe.shard_count(workers=workers, shards=shards)  # shards: the run's identity
    plan = plan_shards(n, workers, attempts)
    out_dir = Path(out) if out is not None else Path("out") / rec.name
    payload = {
        "raw": rec.raw,
        "file": str(rec.file) if rec.file else None,
        "base_dir": str(rec.base_dir),
        "settings": rec.overrides,
        "model": rec.model,
        "seed": seed,
        "n": n,
        "budget": budget,
        "no_cache": no_cache,
    }
    identity = {"recipe_hash": rec.hash, "seed": seed, "n": n, "shard": None, "workers": workers}
    top = RunDir(out_dir, identity, force=force)
    state = top.open(_base_manifest(rec, seed=seed, n=n, budget=budget, workers=workers))
    try:
        if workers == 1 and exe.in_process:
            result = await _run_one(
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
                payload, plan, top, elapsed_before=state.elapsed, on_progress=on_progress
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
        from .monitor import monitor_from_config

        report = await asyncio.to_thread(
            monitor_from_config, rec.monitor, result.out, base_dir=rec.base_dir, seed=seed
        )
        result = dataclasses.replace(result, monitor=report)
    if rec.mix and (result.monitor or {}).get("status") != "fail":
        from .mixer import mix_from_config

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
    limits = Limits(
        n=n,
        max_attempts=budget["max_attempts"] or rec.budget.attempts_for(n),
        max_seconds=budget["max_seconds"],
    )
    llm = open_llm(rec, no_cache=no_cache)
    ctx = _context(rec, seed=seed, llm=llm, start_index=0, run_dir=None)
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


def run_shard_in_process(payload: dict[str, Any]) -> dict[str, Any]:
    """Entry point of a `--workers` process: run one shard into its part directory."""
    import asyncio

    rec = from_dict(
        payload["raw"],
        file=Path(payload["file"]) if payload["file"] else None,
        base_dir=Path(payload["base_dir"]),
        settings=payload["settings"],
        model=payload["model"],
    )
    shard = shards.Shard(**payload["shard"])

    async def main() -> dict[str, Any]:
        identity = {
            "recipe_hash": rec.hash,
            "seed": payload["seed"],
            "n": shard.n,
            "shard": [shard.index, shard.count, shard.start, shard.stop],
            "workers": shard.count,
        }
        part = RunDir(payload["out"], identity)
        base = _base_manifest(
            rec, seed=payload["seed"], n=shard.n, budget=payload["budget"], workers=shard.count
        )
        state = part.open(base)
        try:
            result = await _run_one(
                rec,
                shard,
                part,
                state,
                budget=payload["budget"],
                seed=payload["seed"],
                no_cache=payload["no_cache"],
                on_progress=None,
            )
        finally:
            part.close()
        return result.manifest

    return asyncio.run(main())


async def _run_one(
    rec: Recipe,
    shard: shards.Shard,
    rd: RunDir,
    state: Any,
    *,
    budget: dict[str, Any],
    seed: int,
    no_cache: bool,
    on_progress: shards.Progress | None,
) -> RunResult:
    tally: Tally = state.tally
    limits = Limits(
        n=shard.n,
        max_attempts=shard.max_attempts,
        max_seconds=budget["max_seconds"],
        elapsed=state.elapsed,
        stop_index=shard.stop,
    )
    previous_llm = state.manifest.get("llm")
    if state.finished:
        if not _can_continue(tally, limits):
            return RunResult(rd.path, state.manifest, True, True)
        rd.reopen()
    clock = Clock(state.elapsed)
    llm = open_llm(
        rec,
        no_cache=no_cache,
        spent=previous_llm,
        budget_override={k: budget[k] for k in ("max_cost_usd", "max_tokens")},
    )
    start = shard.start if state.start_index is None else state.start_index
    ctx = _context(rec, seed=seed, llm=llm, start_index=start, run_dir=rd.path, shard=shard)
    prev_stats = Counter(state.manifest.get("stats") or {})

    def report() -> None:
        if on_progress is not None:
            on_progress({"n": shard.n, **tally.to_dict(), "elapsed_s": clock.elapsed})

    def extras() -> dict[str, Any]:
        usage = llm.usage() if llm is not None else None
        return {
            "stats": dict(sorted((prev_stats + _step_stats(ctx)).items())),
            "llm": shards.sum_usage([previous_llm, usage]),
        }

    try:
        async for outcome in outcomes(rec, ctx, limits, tally, skip=state.skip):
            if rd.add(outcome, tally, elapsed=clock.elapsed):
                report()
    except BaseException:
        rd.checkpoint(tally, elapsed=clock.elapsed, **extras())  # resume starts from here
        raise
    finally:
        if llm is not None:
            await llm.aclose()
    manifest = rd.finish(tally, elapsed=clock.elapsed, **extras())
    report()
    return RunResult(
        rd.path,
        manifest,
        resumed=state.resumed,
        resumed_from={"kept": state.tally.kept} if state.resumed else {},
    )


def _can_continue(tally: Tally, limits: Limits) -> bool:
    """A finished run continues only when it stopped on a budget that is now larger."""
    if tally.stop_reason in COMPLETE:
        return False
    if tally.stop_reason == MAX_ATTEMPTS:
        return limits.max_attempts > tally.generated and (
            limits.stop_index is None  # a shard's index range is fixed
        )
    if tally.stop_reason == MAX_SECONDS:
        return limits.max_seconds is None or limits.max_seconds > limits.elapsed
    return True  # a cost/token cap: the LLM layer knows what is left and stops again if none


def _context(
    rec: Recipe,
    *,
    seed: int,
    llm: Any,
    start_index: int,
    run_dir: Path | None,
    shard: shards.Shard | None = None,
) -> Context:
    return Context(
        seed=seed,
        recipe_name=rec.name,
        recipe_hash=rec.hash,
        base_dir=rec.base_dir,
        run_dir=run_dir,
        settings=dict(rec.settings),
        llm=llm,
        start_index=start_index,
        shard=shard.index if shard else 0,
        shards=shard.count if shard else 1,
    )


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


def _base_manifest(
    rec: Recipe, *, seed: int, n: int, budget: dict[str, Any], workers: int
) -> dict[str, Any]:
    from . import __version__

    return {
        "synth_version": __version__,
        "recipe": {
            "name": rec.name,
            "file": str(rec.file) if rec.file else None,
            "hash": rec.hash,
        },
        "seed": seed,
        "n": n,
        "model": rec.model,
        "settings": {k: _redact(k, v) for k, v in rec.settings.items()},
        "budget": {k: v for k, v in budget.items() if v is not None},
        "workers": workers,
        "outputs": [DATA, REJECTS],
    }


def _redact(key: str, value: Any) -> Any:
    return "***" if any(s in key.lower() for s in _SECRETISH) else value


def _step_stats(ctx: Context) -> Counter[str]:
    """Counters steps added to ctx.stats; the chain's own kept/rejected counters are left
    out because records still in flight when the run stopped inflate them."""
    return Counter(
        {
            k: v
            for k, v in ctx.stats.items()
            if k not in ("kept", "rejected") and not k.startswith("rejected_")
        }
    )


__all__ = ["RunResult", "resolve", "run", "stream"]
