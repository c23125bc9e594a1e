"""The executor seam: what an executor is, and the registry built-in and plugin
executors add themselves to by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from synth.runner.rundir import RunDir
from synth.runner.shard import Progress, Shard, ShardJob


@runtime_checkable
class Executor(Protocol):
    """Runs the shards of one run and merges their parts into the open run directory."""

    name: str
    in_process: bool  # a one-shard run may be written straight into the run directory

    async def shard_count(self, *, workers: int, shards: int | None) -> int:
        """How many shards this run is split into (part of the run's identity)."""
        ...

    async def run(
        self,
        job: ShardJob,
        plan: list[Shard],
        top: RunDir,
        *,
        elapsed_before: float,
        on_progress: Progress | None,
    ) -> dict[str, Any]:
        """Run every shard of `plan` into `top/parts/<shard>/`, merge, return the manifest."""
        ...


Factory = Callable[..., Executor]
EXECUTORS: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        EXECUTORS[name] = factory
        return factory

    return deco
