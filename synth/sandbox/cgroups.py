"""An extra layer where the machine allows it: one memory + pids cgroup per worker slot.

rlimits bound each process (RLIMIT_AS) and the uid's process count, but not their sum: 32
processes of 1 GiB each, or a tmpfs full of files, are still the host's problem. A memory
cgroup bounds the whole slot (server, job, every child, the job tmpfs pages they write)
and tells us when it had to OOM-kill (`oom_kill` counter), which the judge turns into the
`memory` verdict. Needs root and a writable cgroup hierarchy (v1 `memory`/`pids`, or v2
with those controllers delegated); otherwise the slot runs without it and `synth sandbox
check` says so. The fork server is protected from the OOM killer; jobs are its victims."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
SERVER_HEADROOM_MB = 256  # the server (interpreter, pytest) and bubblewrap


@dataclass
class SlotCgroup:
    name: str
    dirs: dict[str, Path] = field(default_factory=dict)  # controller -> directory
    v2: bool = False
    limit: int = 0

    @classmethod
    def create(cls, name: str) -> SlotCgroup | None:
        """A fresh cgroup for one slot, or None where cgroups cannot be created."""
        if os.geteuid() != 0:
            return None
        cg = cls(name)
        try:
            if (ROOT / "cgroup.controllers").is_file():
                ctrl = (ROOT / "cgroup.subtree_control").read_text().split()
                if "memory" not in ctrl:
                    return None
                d = ROOT / f"synth-sandbox-{name}"
                d.mkdir(exist_ok=True)
                cg.v2, cg.dirs = True, {"memory": d}
                if "pids" in ctrl:
                    cg.dirs["pids"] = d
            else:
                for ctl in ("memory", "pids"):
                    if (ROOT / ctl).is_dir():
                        d = ROOT / ctl / f"synth-sandbox-{name}"
                        d.mkdir(exist_ok=True)
                        cg.dirs[ctl] = d
                if "memory" not in cg.dirs:
                    cg.remove()
                    return None
        except OSError:
            cg.remove()
            return None
        return cg

    def set_limits(self, memory_mb: int, disk_mb: int, nproc: int) -> None:
        limit = (memory_mb + disk_mb + SERVER_HEADROOM_MB) << 20
        if limit == self.limit:
            return
        mem = self.dirs["memory"]
        if self.v2:
            (mem / "memory.max").write_text(str(limit))
            (mem / "memory.swap.max").exists() and (mem / "memory.swap.max").write_text("0")
        else:
            (mem / "memory.limit_in_bytes").write_text(str(limit))
        if "pids" in self.dirs:
            (self.dirs["pids"] / "pids.max").write_text(str(nproc + 16))
        self.limit = limit

    def add(self, pid: int) -> None:
        for d in {str(p): p for p in self.dirs.values()}.values():
            (d / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        mem = self.dirs.get("memory")
        if mem is None:
            return 0
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in (mem / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def limit_events(self) -> dict[str, int]:
        """How often so far each limit refused the slot something, by the kernel's own
        counters: `memory` (usage reached the memory limit: v1 `memory.failcnt`, v2
        `memory.events` max) and `nproc` (a fork refused: `pids.events` max). A job that
        catches the failure and exits 0 still moves them, which is why they are read."""
        out = {}
        mem, pids = self.dirs.get("memory"), self.dirs.get("pids")
        if mem is not None:
            out["memory"] = (
                _counter(mem / "memory.events", "max")
                if self.v2
                else _number(mem / "memory.failcnt")
            )
        if pids is not None:
            out["nproc"] = _counter(pids / "pids.events", "max")
        return out

    def cap_pids(self, nproc: int) -> bool:
        """Let the next job start exactly `nproc` tasks under this cgroup's count, which
        the kernel counts when it refuses one (RLIMIT_NPROC refuses without a trace).
        The caller sets the job's RLIMIT_NPROC one higher, so this cap is what binds.
        Only where no helper must fork while the job's tasks are alive (pid-namespace
        cleanup). False when the slot has no pids controller."""
        pids = self.dirs.get("pids")
        if pids is None:
            return False
        try:
            current = _number(pids / "pids.current")
            (pids / "pids.max").write_text(str(current + nproc))
        except OSError:
            return False
        return True

    def uncap_pids(self, nproc: int) -> None:
        pids = self.dirs.get("pids")
        if pids is not None:
            try:
                (pids / "pids.max").write_text(str(nproc + 16))
            except OSError:
                pass

    def describe(self) -> str:
        """Where the slot's limits live, for `synth sandbox check`."""
        version = "v2" if self.v2 else "v1"
        return (
            f"cgroup {version} {', '.join(sorted(self.dirs))}, memory limit {self.limit >> 20} MiB"
        )

    def remove(self) -> None:
        """Kill whatever is still inside, wait for it to leave, and delete the cgroup."""
        import signal
        import time

        for d in set(self.dirs.values()):
            for _ in range(200):
                try:
                    pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    break
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                time.sleep(0.01)
            try:
                d.rmdir()
            except OSError:
                pass
        self.dirs = {}


def _number(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _counter(path: Path, key: str) -> int:
    """`key N` in a flat-keyed cgroup file such as `memory.events` or `pids.events`."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def protect_from_oom(pid: int) -> None:
    """The fork server must not be the OOM killer's victim (its jobs set theirs to +1000)."""
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text("-1000")
    except OSError:
        pass


def server_host_pid(bwrap_pid: int) -> int | None:
    """The host pid of the fork server: bubblewrap's only child (it runs --as-pid-1)."""
    try:
        kids = Path(f"/proc/{bwrap_pid}/task/{bwrap_pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None
