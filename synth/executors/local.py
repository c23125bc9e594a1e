"""The default executor: this machine. One shard runs in this process, straight into the
run directory; several run in a pool of spawned processes (`synth.shards.run_parallel`)."""

from __future__ import annotations

from typing import Any

from synth.executors import register
from synth.shards import Progress, Shard, run_parallel
from synth.sink import RunDir


class LocalExecutor:
    name = "local"
    in_process = True

    async def shard_count(self, *, workers: int, shards: int | None) -> int:
        # One shard per process: `--shards` and `--workers` mean the same thing here.
        return shards if shards is not None else workers

    async def run(
        self,
        payload: dict[str, Any],
        plan: list[Shard],
        top: RunDir,
        *,
        elapsed_before: float,
        on_progress: Progress | None,
    ) -> dict[str, Any]:
        return await run_parallel(
            payload, plan, top, elapsed_before=elapsed_before, on_progress=on_progress
        )

    def __repr__(self) -> str:
        return "LocalExecutor()"


register("local")(LocalExecutor)
