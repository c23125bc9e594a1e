"""Executors decide where the shards of a run execute; the shards decide what is made.

A run is split into shards by record index range (`synth.runner.shard.plan`), and a record
depends only on (recipe, seed, index), so every executor writes the same records: the
`local` one in this process or a pool of processes on this machine (the default), the
`ray` one as Ray tasks on a cluster. Each shard writes its part directory under the run
directory and the executor merges the parts into one dataset, one rejects file and one
manifest. Executors register by name, the way steps do, so a new backend is one module.

    manifest = await get_executor("ray", address="ray://head:10001").run(job, plan, top, ...)
"""

from __future__ import annotations

from synth.errors import ConfigError
from synth.executors.registry import EXECUTORS, Executor, register


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
    from synth.executors import local, ray  # noqa: F401


__all__ = ["EXECUTORS", "Executor", "get_executor", "register"]
