"""The `ray` executor: the shards of a run as Ray tasks on a cluster.

Ray is the scheduler; synth only shards and merges. Each shard is one task (one CPU)
that runs the shard's whole async pipeline (`ray_shard.run_shard`) into its part
directory under the run directory, which must be on a path every node sees (a shared
volume). The driver follows the parts' manifests for progress and merges the parts
exactly as the local executor does, so the dataset, rejects, manifest and report are the
same whatever ran the shards.

Failures, from the smallest to the largest:
- a worker process or node dies: Ray runs the task again (`max_retries`), and the new
  attempt resumes the part from its last checkpoint;
- a shard fails (a bad recipe, a node whose sandbox refuses code): the other shards
  finish, the error names the shard and node, and running the command again runs only
  the shards that are not finished (finished parts are reused, not redone);
- LLM answers are cached in the shared state dir (SQLite WAL, safe across processes),
  so a shard that is redone never pays twice for a call.

`ray` is imported only when this executor is used: rule-based runs and `synth --help`
never load it, and a missing Ray is a ConfigError that says how to install it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from synth.errors import ConfigError, SinkError, SynthError
from synth.executors.registry import register
from synth.files import state_dir
from synth.redaction import is_secret_name
from synth.runner.engine import COMPLETE, MAX_ATTEMPTS, Clock
from synth.runner.merge import merge, progress_of
from synth.runner.recipe import Recipe
from synth.runner.rundir import PARTS, RunDir, read_manifest
from synth.runner.shard import Progress, Shard, ShardJob

# Forwarded to the workers: synth's own settings and endpoints, never credentials (API
# keys must be set where the workers run, e.g. in the environment of `ray start`).
FORWARD_PREFIXES = ("SYNTH_", "LITELLM_")
FORWARD_SUFFIXES = ("_API_BASE", "_BASE_URL", "_API_VERSION")


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "the ray executor needs Ray, which is not installed",
            path="--executor",
            expected="the `ray` extra of synth",
            found=f"import ray: {exc}",
            fix="pip install 'synth[ray]' (on the driver and on every worker node)",
        ) from exc
    return ray


class RayExecutor:
    """`address`: a Ray cluster (`ray://head:10001`, `head:6379`, `auto`); by default a
    cluster already started on this machine (`ray start --head`), else a private one."""

    name = "ray"
    in_process = False

    def __init__(
        self, *, address: str | None = None, max_retries: int = 3, num_cpus: float = 1.0
    ) -> None:
        self.address = address
        self.max_retries = max_retries
        self.num_cpus = num_cpus

    def connect(self) -> Any:
        ray = import_ray()
        if ray.is_initialized():
            return ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home by default
        kwargs: dict[str, Any] = {"address": self.address, "logging_level": logging.WARNING}
        if self.address is None:
            kwargs["include_dashboard"] = False  # only used if a private instance starts
        noise = _Drop("SIGTERM handler is not set")  # off the main thread on purpose
        logging.getLogger("ray._private.worker").addFilter(noise)
        try:
            ray.init(**kwargs)
        except Exception as exc:  # whatever Ray raises here means: not connected
            raise ConfigError(
                f"cannot connect to the Ray cluster at {self.address or 'this machine'}",
                path="--address",
                expected="a running Ray cluster: ray://<head>:10001 (Ray Client) or "
                "<head>:6379 from a cluster node",
                found=f"{type(exc).__name__}: {exc}",
                fix="start one with `ray start --head` (see README, Running on Ray), check "
                "the address and that the head is reachable; a cluster with token "
                "authentication also needs RAY_AUTH_MODE=token and its token here",
            ) from exc
        finally:
            logging.getLogger("ray._private.worker").removeFilter(noise)
        return ray

    async def shard_count(self, *, workers: int, shards: int | None) -> int:
        if shards is not None:
            return shards
        if workers > 1:
            return workers
        ray = await asyncio.to_thread(self.connect)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    async def run(
        self,
        job: ShardJob,
        plan: list[Shard],
        top: RunDir,
        *,
        elapsed_before: float,
        on_progress: Progress | None,
    ) -> dict[str, Any]:
        ray = await asyncio.to_thread(self.connect)  # starting Ray takes seconds: not on the loop
        from synth.executors.ray_gate import RateActor

        clock = Clock(elapsed_before)
        job = job.absolute()
        rec = job.recipe()
        root = top.path.resolve()
        parts = [root / PARTS / s.label for s in plan]
        seed = job.seed
        done = {
            s.index: m
            for s, p in zip(plan, parts, strict=True)
            if (m := _finished(rec, seed, s, p))
        }
        env = forwarded_env()
        gate = None
        from synth.llm.limits import paces_requests  # only for runs that call a model

        if rec.needs_llm and paces_requests(rec.resolved.get("limits"), env):
            actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(RateActor)
            gate = actor.remote()
        try:
            todo = [(s, p) for s, p in zip(plan, parts, strict=True) if s.index not in done]
            refs = self._submit(ray, rec, job, todo, root, env, gate)
            futures = {asyncio.wrap_future(ref.future()): s for ref, s in refs}
            try:
                pending = set(futures)
                while pending:
                    _, pending = await asyncio.wait(pending, timeout=0.5)
                    if on_progress:
                        on_progress(progress_of(parts, job.n, clock.elapsed))
            except BaseException:  # interrupted: stop the shards; each resumes from its checkpoint
                for ref, _ in refs:
                    ray.cancel(ref)
                raise
        finally:
            if gate is not None:
                ray.kill(gate)
        results: dict[int, dict[str, Any]] = {}
        errors: list[tuple[Shard, BaseException]] = []
        for fut, s in futures.items():
            exc = fut.exception()
            if exc is None:
                results[s.index] = fut.result()
            else:
                errors.append((s, exc))
        if errors:
            raise self._failure(ray, sorted(errors, key=lambda e: e[0].index), len(plan))
        manifests = [done.get(s.index) or results[s.index]["manifest"] for s in plan]
        merge(top, parts, manifests, elapsed=clock.elapsed)
        top.update(executor=self._report(plan, done, results, manifests))
        return top.manifest

    def _submit(
        self,
        ray: Any,
        rec: Recipe,
        job: ShardJob,
        todo: list[tuple[Shard, Path]],
        root: Path,
        env: dict[str, str],
        gate: Any,
    ) -> list[tuple[Any, Shard]]:
        """One task per shard; Ray runs it again if its worker dies (`max_retries`), not
        if it raises (a shard's own error would only repeat)."""
        from synth.executors.ray_shard import run_shard

        task = ray.remote(run_shard)
        sandboxes = sandbox_overrides(rec)
        return [
            (
                task.options(
                    name=f"synth:{rec.name}:{s.label}",
                    max_retries=self.max_retries,
                    retry_exceptions=False,
                    num_cpus=self.num_cpus,
                ).remote(
                    job.for_shard(s, part, root),
                    env,
                    os.getcwd(),
                    sandboxes,
                    gate,
                ),
                s,
            )
            for s, part in todo
        ]

    def _report(
        self,
        plan: list[Shard],
        done: dict[int, dict[str, Any]],
        results: dict[int, dict[str, Any]],
        manifests: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The manifest's `executor` entry: where each shard ran, in how many processes
        (more than one: it was retried or resumed), and which shards were reused."""
        return {
            "name": "ray",
            "address": self.address or "local",
            "max_retries": self.max_retries,
            "reused_shards": sorted(plan[i].label for i in done),
            "shards": {
                s.label: {
                    "node": results[s.index]["node"],
                    "processes": (manifests[s.index].get("durations") or {}).get("processes", 1),
                }
                for s in plan
                if s.index in results
            },
        }

    def _failure(
        self, ray: Any, errors: list[tuple[Shard, BaseException]], total: int
    ) -> BaseException:
        causes = [(s, _cause(ray, exc, self.max_retries)) for s, exc in errors]
        if len({str(c) for _, c in causes}) == 1:
            return causes[0][1]  # e.g. the same ConfigError from every shard: say it once
        lines = "\n".join(f"  {s.label}: {str(c).splitlines()[0]}" for s, c in causes)
        return SinkError(
            f"{len(causes)} of {total} shards failed (finished shards are kept; running the "
            f"same command again runs only the rest):\n{lines}"
        )

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"


class _Drop(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def forwarded_env() -> dict[str, str]:
    """What the workers need of this environment: synth's settings and the providers'
    endpoints, plus the state dir made absolute so every shard shares one LLM cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (k.startswith(FORWARD_PREFIXES) or k.endswith(FORWARD_SUFFIXES))
        and not is_secret_name(k)
    }
    env["SYNTH_STATE_DIR"] = str(state_dir().resolve())
    return env


def sandbox_overrides(rec: Recipe) -> list[dict[str, Any]]:
    """The sandbox settings (as overrides of verifiers/sandbox.yaml) of every step and
    verifier that runs generated code: the ones that take sandbox configuration."""
    out: list[dict[str, Any]] = []
    for spec in (*rec.steps, *rec.chain):
        props = (spec.entry.schema or {}).get("properties", {})
        if "sandbox" in props:  # a step: overrides under `sandbox:`
            over = dict(spec.config.get("sandbox") or {})
        elif "backend" in props and "bwrap" in str(props["backend"]):  # unit_tests-like
            keys = ("backend", "workers", "disk_mb", "seccomp", "python", "node", "limits")
            over = {k: spec.config[k] for k in keys if k in spec.config}
        else:
            continue
        if over not in out:
            out.append(over)
    return out


def _finished(rec: Recipe, seed: int, s: Shard, part: Path) -> dict[str, Any] | None:
    """The part's manifest if this very shard already finished there and cannot add more."""
    try:
        m = read_manifest(part)
    except SynthError:
        return None
    if not m or m.get("status") != "finished":
        return None
    same = (
        m.get("recipe_hash") == rec.hash
        and m.get("seed") == seed
        and m.get("n") == s.n
        and m.get("shard") == [s.index, s.count, s.start, s.stop]
    )
    return m if same and m.get("stop_reason") in (*COMPLETE, MAX_ATTEMPTS) else None


def _cause(ray: Any, exc: BaseException, retries: int) -> BaseException:
    """The error a user should read: synth's own error as raised in the shard, or what
    became of a worker that kept dying."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, SynthError):
            return cause
        where = f" on {exc.ip}" if getattr(exc, "ip", None) else ""
        return SinkError(f"a shard failed{where}: {type(cause).__name__}: {cause}")
    if isinstance(exc, ray.exceptions.RayError):
        return SinkError(
            f"a shard's worker died {retries + 1} times ({type(exc).__name__}); what it "
            f"wrote is kept: run the same command again to resume. {str(exc)[:300]}"
        )
    return exc


register("ray")(RayExecutor)
