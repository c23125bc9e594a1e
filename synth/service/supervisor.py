"""Runs the service's jobs, each in its own child process, and watches their run dirs.

Why a child process per job: a job is CPU-heavy Python (Faker, verifiers, a local model),
and in the service's process it would starve the event loop that answers status polls.
A job that crashes or leaks memory takes down only itself. The child is plain
`synth run` (plus the report at the end), so a job behaves exactly like the CLI.

Progress comes from the run directory the engine checkpoints every half second
(`manifest.json`), read off the event loop. The service never asks the child anything.

A child dies with the service (Linux `PR_SET_PDEATHSIG`), so a SIGKILLed service leaves
no orphan writing to a run dir. The restarted service starts the job again, and the
engine resumes it from its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from synth.redaction import scrub_paths
from synth.service.jobs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobStore

log = logging.getLogger("synth.service")
POLL_S = 0.5
_SECRET_ENV = ("SYNTH_TOKEN",)  # the service's own secret never reaches a job


class Busy(Exception):
    """The concurrent-job limit is reached (the API answers 429)."""


class Supervisor:
    def __init__(
        self,
        store: JobStore,
        *,
        state_dir: Path,
        project_root: Path,
        max_jobs: int = 2,
        grace_s: float = 10.0,
        nice: int = 5,
    ) -> None:
        self.store = store
        self.state_dir, self.project_root = state_dir, project_root
        self.max_jobs, self.grace_s, self.nice = max_jobs, grace_s, nice
        self.jobs: dict[str, Job] = {}
        self._procs: dict[str, subprocess.Popen[Any]] = {}
        self._spawner: ThreadPoolExecutor | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._submit_lock = asyncio.Lock()
        self.stopping = False
        self.on_change: Callable[[Job], None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def load(self) -> list[Job]:
        """Read every job back and restart the ones a previous service left active."""
        self._yield_cpu_to_jobs()
        jobs = await asyncio.to_thread(lambda: list(self.store.all()))
        self.jobs = {j.id: j for j in jobs}
        resumed = [j for j in jobs if j.active]
        for job in resumed:
            await asyncio.to_thread(_kill_stale, job)
            job.status = QUEUED
            self._start(job)
        return resumed

    async def submit(self, job: Job) -> None:
        """Persist, then start. Raises Busy beyond `max_jobs` active jobs."""
        async with self._submit_lock:
            if sum(j.active for j in self.jobs.values()) >= self.max_jobs:
                raise Busy(f"{self.max_jobs} jobs are already active")
            await asyncio.to_thread(self.store.put, job)  # durable before we answer
            self.jobs[job.id] = job
        self._start(job)

    async def cancel(self, job: Job) -> None:
        """SIGTERM the job's process group (SIGKILL after the grace period) and wait until
        the job is marked cancelled. A job still being started is stopped as soon as its
        process exists."""
        job.cancel_requested = True
        proc = self._procs.get(job.id)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)
        task = self._tasks.get(job.id)
        if task is None:
            if job.active:
                await self._finish(job, CANCELLED)
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.grace_s)
        except TimeoutError:
            proc = self._procs.get(job.id)
            if proc is not None:
                _signal_group(proc.pid, signal.SIGKILL)
            await asyncio.shield(task)

    async def shutdown(self) -> None:
        """SIGTERM: stop every child, keep its job active in the store so the next
        service resumes it. Nothing accepted is lost."""
        self.stopping = True
        for proc in self._procs.values():
            _signal_group(proc.pid, signal.SIGTERM)
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.grace_s)
            for proc in self._procs.values():
                _signal_group(proc.pid, signal.SIGKILL)
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._spawner is not None:
            self._spawner.shutdown(wait=False)

    def _yield_cpu_to_jobs(self) -> None:
        """Jobs are the work; answering polls comes second. Linux nice values are per
        thread, so the event-loop thread (and the worker threads it starts later) gets
        `nice` while one spawner thread, created first, keeps the service's priority and
        forks every job: a poll storm then cannot take CPU from a running job."""
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="synth-spawn")
        self._spawner.submit(lambda: None).result()  # the thread exists before the renice
        if self.nice > 0 and sys.platform == "linux":
            try:
                tid = threading.get_native_id()
                now = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, now + self.nice)
            except OSError as exc:
                log.warning("could not lower the service's priority: %s", exc)

    # -- one job ---------------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        self._tasks[job.id] = asyncio.create_task(self._run(job), name=f"job-{job.id}")

    async def _run(self, job: Job) -> None:
        try:
            await self._run_child(job)
        except Exception as exc:  # a supervisor bug must fail one job, not the service
            log.exception("job %s: supervisor error", job.id)
            await self._finish(job, FAILED, error=scrub_paths(f"internal error: {exc}"))
        finally:
            self._tasks.pop(job.id, None)
            self._procs.pop(job.id, None)

    async def _run_child(self, job: Job) -> None:
        if job.cancel_requested:
            await self._finish(job, CANCELLED)
            return
        Path(job.run_dir).parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path(job)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env["SYNTH_STATE_DIR"] = str(self.state_dir)  # the shared response cache
        env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        argv = [sys.executable, "-m", "synth.service.supervisor", str(os.getpid()), job.run_dir]
        argv += child_args(job)
        with open(logfile, "ab") as out:  # noqa: ASYNC230  (opening a log file is instant)
            spawn = functools.partial(
                subprocess.Popen,
                argv,
                cwd=self.project_root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # cancel kills the job's whole process group
            )
            proc = await asyncio.get_running_loop().run_in_executor(self._spawner, spawn)
        self._procs[job.id] = proc
        if job.cancel_requested:  # cancelled while it was being started
            _signal_group(proc.pid, signal.SIGTERM)
        job.status, job.pid, job.starts = RUNNING, proc.pid, job.starts + 1
        job.started_at = job.started_at or time.time()
        await self._save(job)
        log.info("job %s: started (pid %s, start %d)", job.id, proc.pid, job.starts)
        while proc.poll() is None:  # a non-blocking waitpid every POLL_S
            await asyncio.sleep(POLL_S)
            await self._refresh(job)
        await self._refresh(job)
        if self.stopping and not job.cancel_requested:
            log.info("job %s: interrupted by shutdown; it resumes on the next start", job.id)
            return
        if job.cancel_requested:
            await self._finish(job, CANCELLED)
        elif proc.returncode == 0:
            await self._finish(job, SUCCEEDED)
        else:
            error = _error_from_log(logfile, proc.returncode)
            roots = [(self.project_root.resolve(), ""), (self.state_dir.resolve(), "<state>/")]
            await self._finish(job, FAILED, error=scrub_paths(error, roots))

    async def _refresh(self, job: Job) -> None:
        manifest = await asyncio.to_thread(_read_json, Path(job.run_dir) / "manifest.json")
        if manifest:
            job.progress = progress_of(manifest)
            if self.on_change:
                self.on_change(job)

    async def _finish(self, job: Job, status: str, *, error: str | None = None) -> None:
        job.status, job.error, job.finished_at, job.pid = status, error, time.time(), None
        await self._save(job)
        log.info("job %s: %s%s", job.id, status, f" ({error.splitlines()[0]})" if error else "")

    async def _save(self, job: Job) -> None:
        await asyncio.to_thread(self.store.put, job)
        if self.on_change:
            self.on_change(job)

    def log_path(self, job: Job) -> Path:
        return self.state_dir / "jobs" / job.id / "log.txt"


def child_args(job: Job) -> list[str]:
    """`synth run` arguments for a job spec (values of --set as JSON, which YAML reads)."""
    spec = job.spec
    args = ["run", spec["recipe_file"], "-n", str(spec["n"]), "--seed", str(spec["seed"])]
    args += ["--out", job.run_dir, "-q"]
    if spec.get("model"):
        args += ["--model", spec["model"]]
    for key, value in (spec.get("settings") or {}).items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    for key in ("max_attempts", "max_seconds", "max_cost_usd", "max_tokens"):
        if spec.get(key) is not None:
            args += [f"--{key.replace('_', '-')}", str(spec[key])]
    return args


def progress_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The part of a checkpointed manifest a status poll shows."""
    counts = manifest.get("counts") or {}
    llm = manifest.get("llm") or {}
    n = int(manifest.get("n") or 0)
    kept = int(counts.get("kept", 0))
    return {
        "n": n,
        "kept": kept,
        "fraction": round(kept / n, 4) if n else 0.0,
        "generated": int(counts.get("generated", 0)),
        "rejected": int(counts.get("rejected", 0)),
        "rejected_by_reason": dict(counts.get("rejected_by_reason") or {}),
        "run_status": manifest.get("status"),
        "stop_reason": manifest.get("stop_reason"),
        "data_bytes": int((manifest.get("checkpoint") or {}).get("data_bytes", 0)),
        "elapsed_s": round(float((manifest.get("durations") or {}).get("total_s", 0.0)), 3),
        "llm": {
            k: llm.get(k, 0)
            for k in ("calls", "requests", "cache_hits", "rate_limited", "failures")
        },
        "cost": {
            "usd": float(llm.get("cost_usd") or 0.0),
            "input_tokens": int(llm.get("input_tokens") or 0),
            "output_tokens": int(llm.get("output_tokens") or 0),
        },
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _error_from_log(logfile: Path, returncode: int | None) -> str:
    """The child's own error message (`synth: error: ...`) or the tail of its log."""
    try:
        with open(logfile, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4000))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    if "synth: error:" in tail:
        return tail[tail.rindex("synth: error:") :].strip()[:2000]
    lines = tail.strip().splitlines()
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        # A bug, not a user error: say what it was; the frames stay in the job's log.
        return f"the job process failed (exit status {returncode}): {lines[-1]}"[:2000]
    last = "\n".join(lines[-15:])
    return f"the job process exited with status {returncode}\n{last}".strip()[:2000]


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _kill_stale(job: Job) -> None:
    """A child of an earlier service still alive (no PDEATHSIG on this OS): stop it, but
    only if that pid really is our job's child, never an unrelated reused pid."""
    if not job.pid:
        return
    try:
        cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"synth.service.supervisor" in cmdline and job.run_dir.encode() in cmdline:
        _signal_group(job.pid, signal.SIGKILL)
        for _ in range(50):
            if not Path(f"/proc/{job.pid}").exists():
                break
            time.sleep(0.05)  # noqa: TID251  (runs in a worker thread, at start-up only)


# -- the child ------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the service dies; if it already died
    (between fork and now), exit at once."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the restarted service stops stale children itself
    if os.getppid() != parent:
        os._exit(3)


def child_main(argv: list[str]) -> int:
    """`python -m synth.service.supervisor PARENT_PID RUN_DIR run ...`: the job process."""
    parent, run_dir, run_args = int(argv[0]), Path(argv[1]), argv[2:]
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the engine checkpoints
    from synth.cli import main

    code = main(run_args)
    if code == 0 and _report_stale(run_dir):
        try:
            from synth.report.run import write_report

            write_report(run_dir)
        except Exception as exc:  # a report bug must not fail a finished dataset
            print(f"synth: warning: report failed: {exc}", file=sys.stderr)
    return code


def _report_stale(run_dir: Path) -> bool:
    report, manifest = run_dir / "report.html", run_dir / "manifest.json"
    return not report.exists() or report.stat().st_mtime < manifest.stat().st_mtime


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
