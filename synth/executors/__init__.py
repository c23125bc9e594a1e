"""Executors decide where the shards of a run execute; the shards decide what is made.

A run is split into shards by record index range (`synth.shards.plan`), and a record
depends only on (recipe, seed, index), so every executor writes the same records: the
`local` one in this process or a pool of processes on this machine (the default), the
`ray` one as Ray tasks on a cluster. Each shard writes its part directory under the run
directory and the executor merges the parts into one dataset, one rejects file and one
manifest. Executors register by name, the way steps do, so a new backend is one module.

    manifest = await get_executor("ray", address="ray://head:10001").run(payload, plan, top, ...)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from synth.errors import ConfigError
from synth.shards import Progress, Shard
from synth.sink import RunDir


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
        payload: dict[str, Any],
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


def get_executor(spec: str | Executor | None = None, *, address: str | None = None) -> Executor:
    """An executor by name (`local`, `ray`) or the instance given. `address` is the Ray
    cluster to connect to; it means nothing to the local executor."""
    if spec is not None and not isinstance(spec, str):
        if not isinstance(spec, Executor):
            raise ConfigError(
                "not an executor",
                path="executor",
                expected="'local', 'ray' or an object with shard_count() and run()",
                found=repr(spec),
            )
        return spec
    name = spec or "local"
    _load_builtins()
    factory = EXECUTORS.get(name)
    if factory is None:
        raise ConfigError(
            f"unknown executor {name!r}",
            path="--executor",
            expected=f"one of: {', '.join(sorted(EXECUTORS))}",
            found=name,
            fix="use --executor local (this machine) or --executor ray (a Ray cluster)",
        )
    if address is not None and name != "ray":
        raise ConfigError(
            "--address is the address of a Ray cluster",
            path="--address",
            expected="--executor ray together with --address",
            found=f"--executor {name} --address {address}",
            fix="add --executor ray, or drop --address",
        )
    return factory(address=address) if address is not None else factory()


def _load_builtins() -> None:
    # Importing the modules registers them; neither imports Ray at module level.
    from . import local, ray  # noqa: F401


def absolute_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The worker payload with paths made absolute: a worker elsewhere (another process's
    working directory, another machine on a shared volume) must find the same files."""
    out = dict(payload)
    for key in ("file", "base_dir"):
        if out.get(key):
            out[key] = str(Path(out[key]).resolve())
    return out


__all__ = ["EXECUTORS", "Executor", "absolute_payload", "get_executor", "register"]
