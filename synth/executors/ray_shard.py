"""What a Ray worker does with one shard: the worker side of the `ray` executor.

A Ray worker process is long-lived and reused by later tasks (of this run or another),
so everything a shard sets up is undone when it ends: the environment the driver
forwarded (`SYNTH_*`, endpoints), the working directory, and the rate-limit gate. The
shard itself runs exactly as a `--workers` process runs it (`synth.runner.shard.run_job`):
into its part directory on the shared run path, resuming whatever a dead attempt left.

Generated code never runs unless this node's sandbox passes its start-up probe first:
a node without working isolation fails the shard with a clear error instead of
rejecting every record as a sandbox error, or running the code unjailed."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth.errors import ConfigError, SandboxError, SinkError
from synth.runner.rundir import MANIFEST

if TYPE_CHECKING:
    from synth.runner.shard import ShardJob

# Lets a cluster owner accept the unjailed `unsafe-local` sandbox backend on Ray nodes.
ALLOW_UNSAFE = "SYNTH_RAY_ALLOW_UNSAFE_SANDBOX"


def run_shard(
    job: ShardJob,
    env: dict[str, str],
    cwd: str | None,
    sandboxes: list[dict[str, Any]],
    gate: Any = None,
) -> dict[str, Any]:
    """The Ray task body. Returns the shard's manifest and where it ran."""
    from synth.llm import ratelimit
    from synth.runner.shard import run_job

    assert job.run_dir is not None, "a Ray job names the top run directory"
    _check_run_dir(job.run_dir)
    with _environment(env, cwd):
        _import_plugins()
        if sandboxes:
            asyncio.run(probe_sandboxes(sandboxes, Path(job.base_dir)))
        previous = ratelimit.set_gate(_ActorGate(gate) if gate is not None else None)
        try:
            manifest = run_job(job)
        finally:
            ratelimit.set_gate(previous)
    return {"manifest": manifest, "node": node_name(), "pid": os.getpid()}


def _check_run_dir(run_dir: str) -> None:
    """The part directories go under the driver's run directory: it must be shared."""
    if not (Path(run_dir) / MANIFEST).exists():
        raise SinkError(
            f"node {node_name()} cannot see the run directory {run_dir}: with the ray "
            "executor --out must be on a volume every node mounts at the same path "
            "(and so must $SYNTH_STATE_DIR)"
        )


def node_name() -> str:
    return socket.gethostname()


async def probe_sandboxes(sandboxes: list[dict[str, Any]], base_dir: Path) -> None:
    """Start and probe each sandbox pool the recipe will use on this node (the same
    process-wide pools its steps then get, already warm); raise if one is not safe."""
    from synth.sandbox import get_pool, settings_for

    for overrides in sandboxes:
        settings = settings_for(overrides, base_dir)
        if settings.backend == "unsafe-local" and os.environ.get(ALLOW_UNSAFE) != "1":
            raise SandboxError(
                f"node {node_name()}: the recipe's sandbox backend is 'unsafe-local', which "
                "runs generated code without isolation; a Ray node refuses code jobs with it. "
                f"Use backend: bwrap, or set {ALLOW_UNSAFE}=1 on the driver to accept the risk"
            )
        try:
            layers = await get_pool(settings).layers()
        except SandboxError as exc:
            raise SandboxError(
                f"node {node_name()} refuses code jobs: its sandbox failed the start-up "
                f"probe.\n{exc}\nRun `synth sandbox check` on that node; the shard was not "
                "run, and running the same command again retries it"
            ) from None
        failed = [la for la in layers if la.required and not la.ok]
        if failed:  # the pool raises for these already; kept as a second, local guard
            raise SandboxError(
                f"node {node_name()} refuses code jobs: sandbox layers failed: "
                + ", ".join(f"{la.name} ({la.detail})" for la in failed)
            )


@contextlib.contextmanager
def _environment(env: dict[str, str], cwd: str | None) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env)
    if cwd and os.path.isdir(cwd):  # on another machine the driver's folder may not exist
        os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)


def _import_plugins() -> None:
    """`SYNTH_PLUGINS` as forwarded by the driver. The registry loads it once per process;
    a reused worker may have loaded it before this run's value arrived."""
    from synth.registry import load_plugins

    load_plugins()
    for module in filter(None, os.environ.get("SYNTH_PLUGINS", "").split(",")):
        try:
            importlib.import_module(module.strip())
        except Exception as exc:
            raise ConfigError(
                f"node {node_name()}: SYNTH_PLUGINS module {module!r} failed to import: {exc}",
                expected="the plugin installed on every Ray worker",
                found=module,
                fix="pip install the plugin's package on the workers (or ship it with a "
                "Ray runtime_env)",
            ) from exc


class _ActorGate:
    """`synth.llm.ratelimit.Gate` backed by the run's rate actor: one RPM/TPM budget for all
    the shards of a run, wherever they run."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def admit(self, name: str, limits: Any, tokens: int) -> None:
        delay = await self.actor.reserve.remote(name, limits.rpm, limits.tpm, tokens)
        if delay > 0:
            await asyncio.sleep(delay)

    def settle(self, name: str, limits: Any, reserved: int, used: int) -> None:
        if limits.tpm is not None and reserved != used:
            self.actor.refund.remote(name, limits.tpm, reserved - used)
