"""The default executor: this machine. One shard runs in this process, straight into the
run directory; several run in a pool of spawned processes, one shard each."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from synth.errors import SinkError
from synth.executors.registry import register
from synth.runner.engine import Clock
from synth.runner.merge import merge, progress_of
from synth.runner.rundir import PARTS, RunDir
from synth.runner.shard import Progress, Shard, ShardJob, run_job


class LocalExecutor:
    name = "local"
    in_process = True

    async def shard_count(self, *, workers: int, shards: int | None) -> int:
        # One shard per process: `--shards` and `--workers` mean the same thing here.
        return shards if shards is not None else workers

    async def run(
        self,
        job: ShardJob,
        plan: list[Shard],
        top: RunDir,
        *,
        elapsed_before: float,
        on_progress: Progress | None,
    ) -> dict[str, Any]:
        return await run_parallel(
            job, plan, top, elapsed_before=elapsed_before, on_progress=on_progress
        )

    def __repr__(self) -> str:
        return "LocalExecutor()"


register("local")(LocalExecutor)


async def run_parallel(
    job: ShardJob,
    shards: list[Shard],
    top: RunDir,
    *,
    elapsed_before: float,
    on_progress: Progress | None,
) -> dict[str, Any]:
    """Run each shard in its own spawned process, writing `parts/<shard>/`, then merge
    the parts, in shard order, into the run directory `top` (already opened)."""
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
            loop.run_in_executor(pool, run_job, job.for_shard(s, p))
            for s, p in zip(shards, parts, strict=True)
        ]
        pending = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            if on_progress:
                on_progress(progress_of(parts, job.n, clock.elapsed))
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
