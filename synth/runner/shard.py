"""A run cut into shards, and the worker that runs one shard into its directory.

A shard is a value: shard `s` of `S` owns the record indices `[start, stop)` and asks for
its share of `n`. A record's content depends only on (recipe, seed, index), so the same
shards give the same records whoever runs them: this process, a pool of processes, Ray.
The ranges split `[0, max_attempts)` evenly (an endless source never needs more indices
than attempts); with a finite input, set `budget.max_attempts` to its row count so the
rows, not empty index space, are what the shards divide.

`ShardJob` is what crosses a process boundary (pickled to a pool worker or a Ray task);
`run_job` is what a worker does with it, and `run_one` is the single-process runner both
the API and the workers use."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth.context import Context
from synth.records import Record, read_jsonl
from synth.redaction import is_secret_name
from synth.runner.engine import (
    COMPLETE,
    MAX_ATTEMPTS,
    MAX_SECONDS,
    Clock,
    RunLimits,
    Tally,
    open_llm,
    outcomes,
)
from synth.runner.ledger import Ledger
from synth.runner.merge import sum_usage
from synth.runner.recipe import Recipe, from_dict
from synth.runner.rundir import DATA, REJECTS, TRACES, RunDir, synth_version

if TYPE_CHECKING:  # the LLM layer loads only for recipes that call a model
    from synth.llm.types import LLM

Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int
    start: int
    stop: int | None  # None: unbounded (a single-shard run)
    n: int
    max_attempts: int

    @property
    def label(self) -> str:
        return f"shard-{self.index:03d}-of-{self.count:03d}"


def plan(n: int, count: int, max_attempts: int) -> list[Shard]:
    """`count` shards with disjoint, contiguous index ranges covering `[0, max_attempts)`;
    shard s asks for `n // count` records, the first `n % count` shards one more."""
    if count < 1:
        raise ValueError("count must be >= 1")
    if count == 1:
        return [Shard(0, 1, 0, None, n, max_attempts)]
    shards, start = [], 0
    for s in range(count):
        attempts = max_attempts // count + (1 if s < max_attempts % count else 0)
        share = n // count + (1 if s < n % count else 0)
        shards.append(Shard(s, count, start, start + attempts, share, attempts))
        start += attempts
    return shards


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardJob:
    """One run's recipe and arguments, as a worker needs them: plain values only, so it
    pickles to a spawned process or a Ray task. `shard` and `out` are set per shard;
    `run_dir` is the top run directory (a Ray node checks that it can see it)."""

    raw: dict[str, Any]
    file: str | None
    base_dir: str
    settings: dict[str, Any]
    model: str | None
    seed: int
    n: int
    budget: dict[str, Any]
    no_cache: bool
    shard: Shard | None = None
    out: str | None = None
    run_dir: str | None = None

    @classmethod
    def of(
        cls, rec: Recipe, *, seed: int, n: int, budget: dict[str, Any], no_cache: bool
    ) -> ShardJob:
        return cls(
            raw=rec.raw,
            file=str(rec.file) if rec.file else None,
            base_dir=str(rec.base_dir),
            settings=rec.overrides,
            model=rec.model,
            seed=seed,
            n=n,
            budget=budget,
            no_cache=no_cache,
        )

    def recipe(self) -> Recipe:
        return from_dict(
            self.raw,
            file=Path(self.file) if self.file else None,
            base_dir=Path(self.base_dir),
            settings=self.settings,
            model=self.model,
        )

    def for_shard(self, shard: Shard, out: Path, run_dir: Path | None = None) -> ShardJob:
        return dataclasses.replace(
            self, shard=shard, out=str(out), run_dir=str(run_dir) if run_dir else None
        )

    def absolute(self) -> ShardJob:
        """Paths made absolute: a worker elsewhere (another working directory, another
        machine on a shared volume) must find the same files."""
        return dataclasses.replace(
            self,
            file=str(Path(self.file).resolve()) if self.file else None,
            base_dir=str(Path(self.base_dir).resolve()),
        )


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


def run_job(job: ShardJob) -> dict[str, Any]:
    """Entry point of a worker process (pool or Ray): run one shard into its part
    directory, resuming what an earlier attempt left there; returns its manifest."""
    assert job.shard is not None and job.out is not None, "a worker's job names its shard"
    rec, shard, out = job.recipe(), job.shard, job.out

    async def main() -> dict[str, Any]:
        identity = {
            "recipe_hash": rec.hash,
            "seed": job.seed,
            "n": shard.n,
            "shard": [shard.index, shard.count, shard.start, shard.stop],
            "workers": shard.count,
        }
        part = RunDir(out, identity)
        base = base_manifest(rec, seed=job.seed, n=shard.n, budget=job.budget, workers=shard.count)
        state = part.open(base)
        try:
            result = await run_one(
                rec,
                shard,
                part,
                state,
                budget=job.budget,
                seed=job.seed,
                no_cache=job.no_cache,
                on_progress=None,
            )
        finally:
            part.close()
        return result.manifest

    return asyncio.run(main())


async def run_one(
    rec: Recipe,
    shard: Shard,
    rd: RunDir,
    state: Any,
    *,
    budget: dict[str, Any],
    seed: int,
    no_cache: bool,
    on_progress: Progress | None,
) -> RunResult:
    """Run one shard in this process into the open run directory `rd`."""
    tally: Tally = state.tally
    limits = RunLimits(
        n=shard.n,
        max_attempts=shard.max_attempts,
        max_seconds=budget["max_seconds"],
        elapsed=state.elapsed,
        stop_index=shard.stop,
    )
    if state.finished and not _can_continue(tally, limits):
        return RunResult(rd.path, state.manifest, True, True)
    # What earlier processes of this run paid: the manifest's usage at its last checkpoint
    # plus the ledger's requests since (a killed process paid for those too).
    ledger = None
    previous_llm = state.manifest.get("llm")
    if rec.needs_llm:
        ledger = Ledger(rd.path, after=int(state.manifest.get("usage_seq") or 0))
        previous_llm = sum_usage([previous_llm, ledger.since(state.manifest.get("usage_seq") or 0)])
    if state.finished:
        rd.reopen()
    clock = Clock(state.elapsed)
    llm = open_llm(
        rec,
        no_cache=no_cache,
        spent=previous_llm,
        budget_override={k: budget[k] for k in ("max_cost_usd", "max_tokens")},
        trace_to=rd.path / TRACES,
    )
    if llm is not None and ledger is not None:
        llm.journal = ledger.record
    start = shard.start if state.start_index is None else state.start_index
    ctx = context_for(rec, seed=seed, llm=llm, start_index=start, run_dir=rd.path, shard=shard)
    prev_stats = Counter(state.manifest.get("stats") or {})
    calibrated: list[dict[str, Any]] = list(state.manifest.get("calibration") or [])

    def report(done: bool = False) -> None:
        if on_progress is not None:
            usage = sum_usage([previous_llm, llm.usage() if llm is not None else None])
            on_progress(
                {"n": shard.n, **tally.to_dict(), "elapsed_s": clock.elapsed, "llm": usage}
                | ({"done": True} if done else {})
            )

    def extras() -> dict[str, Any]:
        usage = llm.usage() if llm is not None else None
        out = {
            "stats": dict(sorted((prev_stats + _step_stats(ctx)).items())),
            "llm": sum_usage([previous_llm, usage]),
            **({"calibration": calibrated} if calibrated else {}),
        }
        if ledger is not None:
            out["usage_seq"] = ledger.seq  # the ledger lines this usage already includes
        return out

    def on_calibrated(reports: list[dict[str, Any]]) -> None:
        calibrated[:] = reports

    rd.extras = extras  # every checkpoint, periodic ones too, carries the usage so far
    if ledger is not None:
        rd.after_checkpoint = ledger.compact
    failed = False
    try:
        async for outcome in outcomes(
            rec, ctx, limits, tally, skip=state.skip, on_calibrated=on_calibrated
        ):
            if rd.add(outcome, tally, elapsed=clock.elapsed):
                report()
    except BaseException:
        failed = True
        if llm is not None:  # no waiting for late answers: the run is being stopped
            await llm.aclose(drain=False)
        rd.checkpoint(tally, elapsed=clock.elapsed)  # resume starts from here
        raise
    finally:
        if llm is not None and not failed:
            await llm.aclose()  # late answers finish, are cached and counted, then finish()
        if ledger is not None and failed:
            ledger.close()
    manifest = rd.finish(tally, elapsed=clock.elapsed)
    if ledger is not None:
        ledger.close(finished=True)
    report(done=True)
    return RunResult(
        rd.path,
        manifest,
        resumed=state.resumed,
        resumed_from={"kept": state.tally.kept} if state.resumed else {},
    )


def _can_continue(tally: Tally, limits: RunLimits) -> bool:
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


def context_for(
    rec: Recipe,
    *,
    seed: int,
    llm: LLM | None,
    start_index: int,
    run_dir: Path | None,
    shard: Shard | None = None,
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


def base_manifest(
    rec: Recipe, *, seed: int, n: int, budget: dict[str, Any], workers: int
) -> dict[str, Any]:
    return {
        "synth_version": synth_version(),
        "recipe": {
            "name": rec.name,
            "file": str(rec.file) if rec.file else None,
            "hash": rec.hash,
        },
        "seed": seed,
        "n": n,
        "model": rec.model,
        "settings": {k: "***" if is_secret_name(k) else v for k, v in rec.settings.items()},
        "budget": {k: v for k, v in budget.items() if v is not None},
        "workers": workers,
        "outputs": [DATA, REJECTS],
    }


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
