"""Splitting a run into shards, and the local executor that runs them in processes.

A shard is a value: shard `s` of `S` owns the record indices `[start, stop)` and asks for
its share of `n`. A record's content depends only on (recipe, seed, index), so the same
shards give the same records whoever runs them: this process pool today, Ray later. The
ranges split `[0, max_attempts)` evenly (an endless source never needs more indices than
attempts); with a finite input, set `budget.max_attempts` to its row count so the rows,
not empty index space, are what the shards divide."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .engine import COMPLETE, DONE, EXHAUSTED, Clock, Tally
from .errors import SinkError
from .sink import (
    DATA,
    PARTS,
    REJECTS,
    RunDir,
    describe_files,
    diversity_of,
    rates,
    read_manifest,
)

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


async def run_parallel(
    payload: dict[str, Any],
    shards: list[Shard],
    top: RunDir,
    *,
    elapsed_before: float,
    on_progress: Progress | None,
) -> dict[str, Any]:
    """Run each shard in its own spawned process, writing `parts/<shard>/`, then merge
    the parts, in shard order, into the run directory `top` (already opened)."""
    from . import api  # the worker entry point lives with the single-process runner

    clock = Clock(elapsed_before)
    parts = [top.path / PARTS / s.label for s in shards]
    loop = asyncio.get_running_loop()
    ctx = multiprocessing.get_context("spawn")  # no fork: safe with threads and event loops
    with ProcessPoolExecutor(
        max_workers=len(shards),
        mp_context=ctx,
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [
            loop.run_in_executor(
                pool, api.run_shard_in_process, {**payload, "shard": asdict(s), "out": str(p)}
            )
            for s, p in zip(shards, parts, strict=True)
        ]
        pending = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            if on_progress:
                on_progress(_progress(parts, payload["n"], clock.elapsed))
        results = await asyncio.gather(*futures, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:  # a worker's own error (ConfigError, SinkError ...) surfaces as is
        if isinstance(errors[0], BrokenProcessPool):
            raise SinkError(
                "a worker process died (killed, or out of memory); what it wrote is kept: "
                "run the same command again to resume"
            ) from errors[0]
        raise errors[0]
    manifests = [r for r in results if isinstance(r, dict)]
    return merge(top, parts, manifests, elapsed=clock.elapsed)


def _exit_with_parent(parent: int) -> None:
    """A worker whose parent was killed exits too, instead of writing on unsupervised (or
    idling forever on a dead pool). Exiting mid-batch is safe: it is what resume handles."""

    def watch() -> None:
        tick = threading.Event()
        while os.getppid() == parent:
            tick.wait(0.2)
        os._exit(3)

    threading.Thread(target=watch, name="synth-parent-watch", daemon=True).start()


def merge(
    top: RunDir, parts: list[Path], manifests: list[dict[str, Any]], *, elapsed: float
) -> dict[str, Any]:
    """Concatenate the parts into `data.jsonl` / `rejects.jsonl` (temp + rename), sum the
    counters, and finish the top manifest. Parts are removed only when every shard is
    complete, so a budget-stopped sharded run keeps what it needs to continue."""
    for name in (DATA, REJECTS):
        tmp = top.path / (name + ".tmp")
        with open(tmp, "wb") as dst:
            for part in parts:
                with open(part / name, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, top.path / name)
    tally = Tally()
    stats: dict[str, int] = {}
    for m in manifests:
        t = Tally.from_dict(m.get("counts", {}))
        tally.generated += t.generated
        tally.kept += t.kept
        tally.rejected += t.rejected
        tally.by_reason.update(t.by_reason)
        for k, v in (m.get("stats") or {}).items():
            stats[k] = stats.get(k, 0) + v
    reasons = [m.get("stop_reason") or DONE for m in manifests]
    tally.stop_reason = next((r for r in reasons if r not in COMPLETE), None) or (
        EXHAUSTED if EXHAUSTED in reasons else DONE
    )
    files = describe_files(top.path, (DATA, REJECTS))
    top.update(
        status="finished",
        stop_reason=tally.stop_reason,
        counts=tally.to_dict(),
        stats=stats,
        shards=[
            {
                "shard": m.get("shard"),
                "stop_reason": m.get("stop_reason"),
                "counts": m.get("counts"),
                "elapsed_s": (m.get("durations") or {}).get("total_s"),
            }
            for m in manifests
        ],
        durations={**top.manifest.get("durations", {}), "total_s": elapsed},
        records_per_s=rates(tally, elapsed),
        checkpoint={
            "data_bytes": files[DATA]["bytes"],
            "rejects_bytes": files[REJECTS]["bytes"],
            "index": None,
            "ids": [],
        },
        files=files,
        diversity=diversity_of(top.path / DATA),
        llm=sum_usage([m.get("llm") for m in manifests]),
    )
    if tally.stop_reason in COMPLETE:
        shutil.rmtree(top.path / PARTS, ignore_errors=True)
    return top.manifest


def _progress(parts: list[Path], n: int, elapsed: float) -> dict[str, Any]:
    total = Tally()
    for part in parts:
        try:
            m = read_manifest(part) or {}
        except Exception:  # a manifest being replaced right now: skip this poll
            continue
        t = Tally.from_dict(m.get("counts", {}))
        total.generated += t.generated
        total.kept += t.kept
        total.rejected += t.rejected
    return {"n": n, **total.to_dict(), "elapsed_s": elapsed}


def sum_usage(usages: list[Any]) -> Any:
    """Add up the LLM layer's usage dicts (numbers summed, nested dicts merged)."""
    present = [u for u in usages if isinstance(u, dict)]
    if not present:
        return None
    out: dict[str, Any] = {}
    for u in present:
        for k, v in u.items():
            if isinstance(v, bool) or not isinstance(v, int | float | dict):
                out.setdefault(k, v)
            elif isinstance(v, dict):
                out[k] = sum_usage([out.get(k), v])
            else:
                out[k] = out.get(k, 0) + v
    return out
