"""The streaming pipeline: source -> steps -> verifier chain -> outcomes, until `n` pass.

Memory stays flat because every stage pulls one record at a time: steps are async
generators, and the chain runs through `ordered_map`, which runs at most `concurrency`
records at once, holds a bounded window of them and yields them in input order. Order
never depends on timing, so the same recipe and seed give the same bytes whatever the
concurrency."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from synth import files
from synth.chain import Verdict
from synth.context import Context
from synth.errors import BudgetExceeded
from synth.records import Record
from synth.runner import written
from synth.runner.recipe import Recipe
from synth.streams import ordered_map

# Stop reasons, as the manifest reports them.
DONE = "done"  # n records passed
EXHAUSTED = "exhausted"  # the source ran dry first (a finite input file)
MAX_ATTEMPTS, MAX_SECONDS = "max_attempts", "max_seconds"
COMPLETE = frozenset({DONE, EXHAUSTED})  # nothing a bigger budget could add


@dataclass(frozen=True, slots=True)
class Outcome:
    """A record after the chain, with the verdict that decided it."""

    record: Record
    verdict: Verdict

    @property
    def ok(self) -> bool:
        return self.verdict.ok


@dataclass(slots=True)
class Tally:
    """What a run has produced so far. Restored from the checkpoint on resume, so budgets
    and `n` count over the whole run, not per process."""

    generated: int = 0
    kept: int = 0
    rejected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    stop_reason: str | None = None

    def add(self, outcome: Outcome) -> None:
        self.generated += 1
        if outcome.ok:
            self.kept += 1
        else:
            self.rejected += 1
            self.by_reason[outcome.verdict.reason or "rejected"] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "kept": self.kept,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.by_reason.items())),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tally:
        return cls(
            d.get("generated", 0),
            d.get("kept", 0),
            d.get("rejected", 0),
            Counter(d.get("rejected_by_reason", {})),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLimits:
    """`n` passing records, within `max_attempts` records generated and `max_seconds` of
    run time (both cumulative); `stop_index` ends a shard's index range."""

    n: int
    max_attempts: int
    max_seconds: float | None = None
    elapsed: float = 0.0  # run time already spent by earlier processes of this run
    stop_index: int | None = None


async def outcomes(
    recipe: Recipe,
    ctx: Context,
    limits: RunLimits,
    tally: Tally,
    *,
    skip: Collection[str] = (),
    on_calibrated: Callable[[list[dict[str, Any]]], None] | None = None,
) -> AsyncIterator[Outcome]:
    """Run the recipe and yield each verified record in order, updating `tally`, until a
    limit is reached; `tally.stop_reason` says which. Records whose id is in `skip` were
    already written and counted by an earlier process of this run: they are dropped.

    Before the first record, every judge in the chain is measured on its calibration set
    (`synth.judges.calibration`); one that fails stops the run with a ConfigError instead
    of gating. `on_calibrated` receives the reports, for the manifest."""
    steps, chain = recipe.instantiate()
    if ctx.llm is not None:
        from synth.judges.calibration import check_chain

        reports = await check_chain(chain, ctx)
        if on_calibrated is not None and reports:
            on_calibrated(reports)
    stream: AsyncIterator[Record] = _nothing()
    for spec, fn in zip(recipe.steps, steps, strict=True):
        if spec.entry.llm or "model" in spec.config:  # measured as the model's text
            fn = written.tagging(fn)
        stream = fn(stream, ctx)
    if limits.stop_index is not None:
        stream = _until_index(stream, limits.stop_index)

    async def verify(r: Record) -> Outcome:
        return Outcome(*await chain.check(r, ctx))

    # ordered_map is an async generator: typed as one so it can be closed (cancelling work).
    checked = cast(AsyncGenerator[Outcome, None], ordered_map(stream, verify, recipe.concurrency))
    deadline = None
    if limits.max_seconds is not None:
        deadline = asyncio.get_running_loop().time() + limits.max_seconds - limits.elapsed
    try:
        while True:
            if tally.kept >= limits.n:
                tally.stop_reason = DONE
                return
            if tally.generated >= limits.max_attempts:
                tally.stop_reason = MAX_ATTEMPTS
                return
            try:
                if deadline is None:
                    outcome = await anext(checked)
                else:
                    async with asyncio.timeout_at(deadline):
                        outcome = await anext(checked)
            except StopAsyncIteration:
                tally.stop_reason = EXHAUSTED if limits.stop_index is None else MAX_ATTEMPTS
                return
            except TimeoutError:
                if deadline is None or asyncio.get_running_loop().time() < deadline:
                    raise  # a step's own timeout, not our budget
                tally.stop_reason = MAX_SECONDS
                return
            except BudgetExceeded as exc:
                tally.stop_reason = getattr(exc, "reason", None) or "max_cost_usd"
                return
            if outcome.record.id in skip:
                continue
            tally.add(outcome)
            yield outcome
    finally:
        await checked.aclose()  # cancels whatever is still in flight


async def _nothing() -> AsyncIterator[Record]:
    return
    yield  # pragma: no cover  (makes this an async generator)


async def _until_index(records: AsyncIterator[Record], stop: int) -> AsyncIterator[Record]:
    async for r in records:
        if r.meta.get("index", 0) >= stop:
            return
        yield r


def open_llm(
    recipe: Recipe,
    *,
    no_cache: bool = False,
    spent: dict[str, Any] | None = None,
    budget_override: dict[str, Any] | None = None,
    trace_to: Path | None = None,
) -> Any:
    """The LLM client for a run, or None when no step needs a model.

    `synth.llm.client` (and litellm behind it) is imported only here and only when needed, so
    rule-based recipes start fast and run without it. Caps are what is left of the run's
    budget after earlier processes of the same run (`spent`, from the manifest). Rate
    limits and retries per model come from the recipe's `limits:` (`synth.llm.limits`).
    `trace_to` is the file the client traces every call to (when the recipe keeps one)."""
    if not recipe.needs_llm:
        return None
    llm = importlib.import_module("synth.llm.client")
    llm.check_credentials(recipe.models)

    budget = {**_budget_dict(recipe), **(budget_override or {})}
    spent = spent or {}
    cost, tokens = budget.get("max_cost_usd"), budget.get("max_tokens")
    if cost is not None:
        cost = max(0.0, cost - float(spent.get("cost_usd") or 0.0))
    if tokens is not None:
        used = spent.get("total_tokens")
        if used is None:
            used = (spent.get("input_tokens") or 0) + (spent.get("output_tokens") or 0)
        tokens = max(0, tokens - int(used))
    return llm.client_for_run(
        model=recipe.model,
        state_dir=files.state_dir(),
        no_cache=no_cache,
        max_cost_usd=cost,
        max_tokens=tokens,
        limits_table=recipe.resolved.get("limits"),
        trace_to=trace_to if recipe.trace else None,
    )


async def check_judges(recipe: Recipe, *, no_cache: bool = False) -> None:
    """Measure the recipe's judges before a run directory exists, so a judge that fails
    its calibration stops the run without leaving an empty run behind (which the next
    attempt, with another model or `allow_uncalibrated`, would have to `--force` over).
    The results land in the state dir, where the run's own check finds them for free."""
    if not recipe.needs_llm:
        return
    from synth.judges.calibration import check_chain, probe_of

    _, chain = recipe.instantiate()
    if not any(probe_of(v.fn) for v in chain.verifiers):
        return
    llm = open_llm(recipe, no_cache=no_cache)
    try:
        ctx = Context(seed=0, recipe_name=recipe.name, base_dir=recipe.base_dir, llm=llm)
        await check_chain(chain, ctx)
    finally:
        if llm is not None:
            await llm.aclose()


def _budget_dict(recipe: Recipe) -> dict[str, Any]:
    b = recipe.budget
    return {"max_cost_usd": b.max_cost_usd, "max_tokens": b.max_tokens}


class Clock:
    """Run time across resumes: what earlier processes spent plus this one's."""

    def __init__(self, before: float = 0.0) -> None:
        self.before = before
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.start
