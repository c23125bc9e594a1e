"""A pool of pre-started fork servers, one per worker slot, and the async client side of
their protocol (length-prefixed JSON over the server's stdin/stdout pipes).

The pool is not tied to one event loop: servers are plain processes, each request registers
a reader on the running loop and removes it afterwards, so one pool serves successive
`asyncio.run` calls. A slot whose server dies, times out or answers garbage is killed and
started again (and probed again) before it serves another job."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import struct
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from synth.errors import SandboxError
from synth.sandbox import cgroups, jail, layers, uids
from synth.sandbox.limits import SandboxLimits, SandboxSettings

log = logging.getLogger("synth.sandbox")
_HDR = struct.Struct("!I")
GRACE_S = 5.0  # beyond the job's wall limit before the parent gives up on a server
START_TIMEOUT_S = 60.0
MAX_REPLY = 64 << 20


@dataclass(frozen=True)
class Job:
    """One execution: files for the job directory, what to run, and its limits."""

    kind: str  # "python" (solution + tests), "node" (JS solution + tests), "probe"
    files: Mapping[str, str]
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    options: Mapping[str, Any] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "files": dict(self.files),
            "limits": {**self.limits.as_dict(), "report_kb": 4096},
            **self.options,
        }


@dataclass(frozen=True)
class RawResult:
    """What the fork server observed. Grading it is `grading.py`'s business."""

    exit: int | None = None
    signal: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    report_overflow: bool = False
    stdout: str = ""
    stderr: str = ""
    output_bytes: int = 0
    report: str = ""
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    maxrss_kb: int = 0
    error: str = ""  # set when the sandbox itself failed, not the job
    oom_killed: bool = False  # the slot's memory cgroup had to kill a job process
    # Limits the kernel says the job ran into, caught by the job or not ("memory": the
    # slot's memory cgroup limit, "nproc": a refused fork or thread), from cgroup counters.
    limits_hit: tuple[str, ...] = ()

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> RawResult:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in reply.items() if k in known})


class _Slot:
    def __init__(self, index: int, pool: ForkServerPool) -> None:
        self.index = index
        self.pool = pool
        self.proc: subprocess.Popen[bytes] | None = None
        self.lease: uids.UidLease | None = None
        self.job_root: str | None = None
        self.facts: dict[str, Any] = {}
        self.ready = False
        self.cgroup: cgroups.SlotCgroup | None = None
        self.errlog: Any = None  # the server's and bubblewrap's own stderr, for diagnosis

    @property
    def uid(self) -> int | None:
        return self.lease.uid if self.lease else None

    def spawn(self) -> None:
        """Start the server. Called on the loop's thread on purpose: bubblewrap's
        --die-with-parent fires when the *thread* that forked it exits."""
        settings = self.pool.settings
        if os.geteuid() == 0 and self.lease is None:
            self.lease = uids.lease()
        if settings.backend == "bwrap":
            launch = jail.bwrap_launch(settings, self.uid)
        else:
            self.job_root = tempfile.mkdtemp(prefix="synth-sbx-")
            os.chmod(self.job_root, 0o711)
            launch = jail.unsafe_launch(settings, self.uid, self.job_root)
        if self.errlog is None:
            self.errlog = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the slot)
        self.errlog.seek(0)
        self.errlog.truncate()
        self.proc = subprocess.Popen(
            launch.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errlog,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},  # nothing of ours, ever
            start_new_session=True,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.lease is not None and self.cgroup is None:
            self.cgroup = cgroups.SlotCgroup.create(str(self.lease.uid))
        if self.cgroup is not None:
            lim = settings.limits
            try:
                self.cgroup.set_limits(lim.memory_mb, settings.disk_mb, lim.nproc)
                self.cgroup.add(self.proc.pid)
            except OSError:  # an optional layer: report it missing rather than fail
                self.cgroup.remove()
                self.cgroup = None
        os.set_blocking(self.proc.stdout.fileno(), False)
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.ready = False

    def kill(self) -> None:
        proc, self.proc, self.ready = self.proc, None, False
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pipe in (proc.stdin, proc.stdout):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.job_root:
            import shutil

            shutil.rmtree(self.job_root, ignore_errors=True)
            self.job_root = None

    def stderr_tail(self) -> str:
        if self.errlog is None:
            return ""
        self.errlog.seek(0, os.SEEK_END)
        size = self.errlog.tell()
        self.errlog.seek(max(0, size - 2000))
        return str(self.errlog.read().decode("utf-8", "replace")).strip()

    def close(self) -> None:
        self.kill()
        if self.errlog is not None:
            self.errlog.close()
            self.errlog = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    async def ensure_ready(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            self.spawn()
        if self.ready:
            return
        hello = await self._read(START_TIMEOUT_S)
        if not hello.get("ready"):
            raise SandboxError(f"sandbox server did not start: {hello}")
        in_cgroup = None
        if self.cgroup is not None and self.proc is not None:
            # bubblewrap may have forked the server before it joined: move the server too.
            server = cgroups.server_host_pid(self.proc.pid) if self.pool.name == "bwrap" else None
            for pid in (self.proc.pid, server):
                if pid:
                    self.cgroup.add(pid)
                    cgroups.protect_from_oom(pid)
            in_cgroup = self.cgroup.describe()
        probe = Job("probe", {}, self.pool.settings.limits)
        reply = await self.request(probe.message(), self.pool.settings.limits.wall_s + GRACE_S)
        result = RawResult.from_reply(reply)
        try:
            self.facts = json.loads(result.report.splitlines()[0])
        except (IndexError, ValueError):
            raise SandboxError(
                f"sandbox probe failed to report (exit {result.exit}, signal {result.signal}): "
                f"{result.stderr[-2000:]}"
            ) from None
        report = layers.evaluate(self.pool.settings, self.facts, self.uid, in_cgroup)
        self.pool.last_layers = report
        failed = [layer for layer in report if layer.required and not layer.ok]
        if failed:
            fix = (
                "install bubblewrap (scripts/system-deps.sh) or choose `backend: unsafe-local` "
                "knowingly"
                if self.pool.name == "bwrap"
                else "even `unsafe-local` needs these layers"
            )
            raise SandboxError(
                "sandbox layers failed their start-up probe (failing closed):\n"
                + "\n".join(f"  {la.name}: {la.detail}" for la in failed)
                + f"\nfix: run `synth sandbox check` for details; {fix}"
            )
        self.ready = True

    async def request(self, msg: dict[str, Any], limit_s: float) -> dict[str, Any]:
        await self._write(json.dumps(msg, separators=(",", ":")).encode())
        return await self._read(limit_s)

    async def _write(self, body: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        fd = self.proc.stdin.fileno()
        view = memoryview(_HDR.pack(len(body)) + body)
        loop = asyncio.get_running_loop()
        while view:
            try:
                view = view[os.write(fd, view) :]
                continue
            except BlockingIOError:
                pass
            writable: asyncio.Future[None] = loop.create_future()

            def wake(f: asyncio.Future[None] = writable) -> None:
                if not f.done():
                    f.set_result(None)

            loop.add_writer(fd, wake)
            try:
                await writable
            finally:
                loop.remove_writer(fd)

    async def _read(self, limit_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        buf = bytearray()

        def on_readable() -> None:
            if done.done():
                return
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                return
            except OSError as exc:
                done.set_exception(EOFError(str(exc)))
                return
            if not chunk:
                done.set_exception(EOFError("sandbox server closed its pipe"))
                return
            buf.extend(chunk)
            if len(buf) >= _HDR.size:
                (n,) = _HDR.unpack_from(buf)
                if n > MAX_REPLY:
                    done.set_exception(EOFError("sandbox reply too large"))
                elif len(buf) >= _HDR.size + n:
                    done.set_result(bytes(buf[_HDR.size : _HDR.size + n]))

        loop.add_reader(fd, on_readable)
        try:
            body = await asyncio.wait_for(done, limit_s)
        finally:
            loop.remove_reader(fd)
        reply: dict[str, Any] = json.loads(body)
        return reply


class ForkServerPool:
    """`workers` slots, each a fork server (jailed by bubblewrap unless the backend is
    `unsafe-local`). `execute` runs one job on a free slot."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.name = settings.backend
        self._slots = [_Slot(i, self) for i in range(settings.workers)]
        self._free: collections.deque[_Slot] = collections.deque(self._slots)
        self._waiters: collections.deque[asyncio.Future[_Slot]] = collections.deque()
        self.last_layers: list[layers.Layer] = []
        self.closed = False
        if settings.backend == "unsafe-local":
            warn_unsafe()

    async def start(self) -> None:
        """Start and probe every slot now (otherwise each starts on first use)."""
        for s in self._slots:
            if s.proc is None:
                s.spawn()
        await asyncio.gather(*(self._ready(s) for s in self._slots))

    async def _ready(self, slot: _Slot) -> None:
        try:
            await slot.ensure_ready()
        except (TimeoutError, EOFError, OSError, ValueError) as exc:
            slot.kill()
            why = slot.stderr_tail()
            problem = None
            if self.name == "bwrap" and os.geteuid() != 0:
                problem = jail.userns_problem()
            if problem:
                cause, fix = problem
                self.last_layers = [layers.Layer("namespaces", False, True, cause)]
                raise SandboxError(
                    f"sandbox layer 'namespaces' is unavailable (failing closed): {cause}\n"
                    f"fix: {fix}" + (f"\nbubblewrap said: {why}" if why else "")
                ) from exc
            raise SandboxError(
                f"sandbox worker {slot.index} failed to start: {type(exc).__name__}: {exc}"
                + (f"\n{why}" if why else "")
            ) from exc
        except SandboxError:
            slot.kill()
            raise

    async def layers(self) -> list[layers.Layer]:
        await self._ready(self._slots[0])
        return list(self.last_layers)

    async def execute(self, job: Job) -> RawResult:
        if self.closed:
            raise SandboxError("the sandbox pool is closed")
        slot = await self._acquire()
        try:
            await self._ready(slot)
            ooms, before, capped = 0, {}, False
            msg = job.message()
            if slot.cgroup is not None:
                slot.cgroup.set_limits(
                    job.limits.memory_mb, self.settings.disk_mb, job.limits.nproc
                )
                ooms = slot.cgroup.oom_kills()
                before = slot.cgroup.limit_events()
                # In the jail, cleanup kills by pid namespace (no helper fork), so the
                # pids cgroup can be the binding process limit: it counts what it refuses.
                capped = self.name == "bwrap" and slot.cgroup.cap_pids(job.limits.nproc)
                if capped:
                    msg["limits"] = {**msg["limits"], "nproc": job.limits.nproc + 1}
            try:
                reply = await slot.request(msg, job.limits.wall_s + GRACE_S)
            except asyncio.CancelledError:
                slot.kill()  # its reply would be read by the next job: start afresh
                raise
            except (TimeoutError, EOFError, OSError, ValueError) as exc:
                slot.kill()
                return RawResult(error=f"sandbox worker failed: {type(exc).__name__}: {exc}")
            finally:
                if capped and slot.cgroup is not None:
                    slot.cgroup.uncap_pids(job.limits.nproc)
            if not reply.get("ok"):
                slot.kill()
                return RawResult(error=str(reply.get("error", "sandbox worker error"))[-2000:])
            oom = slot.cgroup is not None and slot.cgroup.oom_kills() > ooms
            after = slot.cgroup.limit_events() if slot.cgroup is not None else {}
            hit = tuple(k for k, n in after.items() if n > before.get(k, n))
            if reply.get("retire"):
                slot.kill()  # it could not wipe what the job left: the next job gets a new one
            return RawResult.from_reply({**reply, "oom_killed": oom, "limits_hit": hit})
        finally:
            self._release(slot)

    async def _acquire(self) -> _Slot:
        if self._free:
            return self._free.popleft()
        fut: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return await fut

    def _release(self, slot: _Slot) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done() and not fut.get_loop().is_closed():
                fut.set_result(slot)
                return
        self._free.append(slot)

    def close(self) -> None:
        self.closed = True
        for s in self._slots:
            s.close()


def warn_unsafe() -> None:
    lines = [
        "synth sandbox backend 'unsafe-local': generated code runs WITHOUT namespaces,",
        "read-only system dirs or a disk quota. It can read your files, fill the disk",
        "and reach the network stack. Use only for code you would run yourself.",
    ]
    if os.geteuid() != 0:
        lines += [
            "Not root: it runs as YOU, so it can also read the environment (API keys) of",
            "your other processes and signal them.",
        ]
    bar = "!" * 78
    msg = "\n".join(["", bar, *(f"!! {line}" for line in lines), bar])
    log.warning("sandbox backend 'unsafe-local': generated code runs without isolation")
    import sys

    print(msg, file=sys.stderr)


_POOLS: dict[tuple[Any, ...], ForkServerPool] = {}


def get_pool(settings: SandboxSettings) -> ForkServerPool:
    """The process-wide pool for these settings (started lazily, closed at exit)."""
    key = settings.pool_key()
    pool = _POOLS.get(key)
    if pool is None or pool.closed:
        pool = _POOLS[key] = ForkServerPool(settings)
    return pool


def shutdown() -> None:
    for pool in list(_POOLS.values()):
        pool.close()
    _POOLS.clear()


BackendFactory = Callable[[SandboxSettings], ForkServerPool]
BACKENDS: dict[str, BackendFactory] = {"bwrap": get_pool, "unsafe-local": get_pool}

import atexit  # noqa: E402

atexit.register(shutdown)
