"""The fork server of one worker slot.

Started once per slot (inside bubblewrap for the default backend), it pre-imports the test
frameworks, then serves one job at a time over length-prefixed JSON on its stdin/stdout:
write the job's files into a fresh directory, fork, and in the child start a new session,
point fds 0/1/2/3 at /dev/null and three pipes, set rlimits, drop to the slot's own uid,
load seccomp, scrub the environment and run the trusted runner (or exec node). The server
waits on a pidfd and the pipes with the wall limit as the only timeout (no polling loop),
caps what it reads, then kills everything the job started and reaps it before answering.

Cleanup strategies: `pidns` (the server is pid 1 of its own pid namespace: `kill(-1)`
reaches exactly the job's processes, daemons included), `uid` (a helper that becomes the
slot uid and kills every process of it), `session` (kill the job's session only; used by
the unsafe backend when not root, and it cannot catch a job that leaves its session).

Not root, the jail is a user namespace and the job shares the server's uid: it may write
wherever the server can (the whole job tmpfs, not only its own directory), so the server
wipes the entire tmpfs after every job and retires itself when it cannot. Its process limit
counts the server too (per user namespace on Linux >= 5.14, per host uid before: measured
at start, see `_nproc_counted_in_jail`)."""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
from typing import Any

_HDR = struct.Struct("!I")
KEEP_OUTPUT = 64 * 1024  # bytes of stdout/stderr returned to the parent (the cap is separate)


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_msg(fd: int) -> dict[str, Any] | None:
    head = _read_exact(fd, _HDR.size)
    if head is None:
        return None
    body = _read_exact(fd, _HDR.unpack(head)[0])
    return None if body is None else json.loads(body)


def write_msg(fd: int, obj: dict[str, Any]) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode()
    data = memoryview(_HDR.pack(len(body)) + body)
    while data:
        data = data[os.write(fd, data) :]


class Server:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.uid: int | None = cfg.get("uid")
        self.gid: int | None = cfg.get("gid", self.uid)
        self.root = cfg["job_root"]
        self.cleanup = cfg.get("cleanup", "pidns")
        if self.cleanup == "pidns" and os.getpid() != 1:
            raise SystemExit("pidns cleanup needs the server to be pid 1 of its namespace")
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.seccomp: Any = None
        if cfg.get("seccomp"):
            from . import seccomp

            self.seccomp = seccomp.prepare()  # fails now, in the server, if unsupported
        for path in cfg.get("site", []):
            sys.path.append(path)
        self.preimported = []
        for name in cfg.get("preimport", []):
            try:
                importlib.import_module(name)
                self.preimported.append(name)
            except Exception:
                pass
        from . import probe, runner

        self.runner, self.probe = runner, probe
        self.vm_size = _vm_size()
        # Where RLIMIT_NPROC counts: "uid" (a slot uid of its own: nothing else to count),
        # "jail" (this user namespace: add the server's own tasks), "host" (every task of
        # our uid on the host: add the parent's snapshot of them, `nproc_base`).
        self.nproc_base = int(cfg.get("nproc_base", 0))
        self.nproc_scope = "host" if self.nproc_base else "uid"
        if cfg.get("userns") and _nproc_counted_in_jail():
            self.nproc_scope = "jail"
        self.retire = False
        gc.freeze()  # keep the collector off the shared pages: fewer copy-on-write faults
        self.seq = 0

    # -- per job -------------------------------------------------------------------------
    def serve(self, fd_in: int, fd_out: int) -> None:
        write_msg(fd_out, {"ready": True, "pid": os.getpid(), "preimported": self.preimported})
        while True:
            req = read_msg(fd_in)
            if req is None:
                return
            try:
                reply = self.run_job(req)
            except Exception:
                reply = {"ok": False, "error": traceback.format_exc()[-4000:]}
                write_msg(fd_out, reply)
                raise  # a broken server must be replaced, not reused
            write_msg(fd_out, reply)
            if self.retire:
                return  # the pool saw "retire" in the reply and starts a fresh server

    def _jobdir(self) -> str:
        path = os.path.join(self.root, "w")
        if os.path.lexists(path):
            shutil.rmtree(path)
        os.mkdir(path, 0o700)
        for sub in ("home", "tmp"):
            os.mkdir(os.path.join(path, sub), 0o700)
        return path

    def run_job(self, req: dict[str, Any]) -> dict[str, Any]:
        lim = req.get("limits", {})
        jobdir = self._jobdir()
        for name, text in req.get("files", {}).items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"bad file name {name!r}")
            with open(os.path.join(jobdir, name), "w", encoding="utf-8") as fh:
                fh.write(text)
        if self.uid is not None:
            for dirpath, dirnames, filenames in os.walk(jobdir):
                for n in [dirpath, *(os.path.join(dirpath, x) for x in dirnames + filenames)]:
                    os.chown(n, self.uid, self.gid if self.gid is not None else self.uid)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        rep_r, rep_w = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # pragma: no cover  (runs in the job process)
            self._child(req, lim, jobdir, out_w, err_w, rep_w)
        for fd in (out_w, err_w, rep_w):
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        wall = float(lim.get("wall_s", 10))
        out_cap = int(lim.get("output_kb", 1024)) * 1024
        rep_cap = int(lim.get("report_kb", 4096)) * 1024
        bufs = {out_r: bytearray(), err_r: bytearray(), rep_r: bytearray()}
        counts = dict.fromkeys(bufs, 0)
        open_fds = set(bufs)
        poller = select.poll()
        for fd in (pidfd, *bufs):
            poller.register(fd, select.POLLIN)
        deadline = t0 + wall
        timed_out = output_exceeded = report_overflow = exited = False
        while not exited:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
                break
            for fd, _ev in poller.poll(remaining * 1000):
                if fd == pidfd:
                    exited = True
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                counts[fd] += len(chunk)
                cap = rep_cap if fd == rep_r else KEEP_OUTPUT
                if len(bufs[fd]) < cap:
                    bufs[fd] += chunk[: cap - len(bufs[fd])]
            if counts[out_r] + counts[err_r] > out_cap:
                output_exceeded = True
                break
            if counts[rep_r] > rep_cap:
                report_overflow = True
                break
        wall_ms = (time.perf_counter() - t0) * 1000
        self._kill_all(pid)
        _, status, ru = os.wait4(pid, 0)
        # Every writer is dead now, so whatever is left in the pipes ends in EOF.
        for fd in list(open_fds):
            while counts[fd] <= 2 * max(out_cap, rep_cap):
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                counts[fd] += len(chunk)
                cap = rep_cap if fd == rep_r else KEEP_OUTPUT
                if len(bufs[fd]) < cap:
                    bufs[fd] += chunk[: cap - len(bufs[fd])]
        self._reap()
        for fd in (pidfd, out_r, err_r, rep_r):
            os.close(fd)
        if counts[out_r] + counts[err_r] > out_cap:
            output_exceeded = True
        if counts[rep_r] > rep_cap:
            report_overflow = True
        self.retire = not self._wipe(jobdir)
        return {
            "retire": self.retire,
            "ok": True,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "timed_out": timed_out,
            "output_exceeded": output_exceeded,
            "report_overflow": report_overflow,
            "stdout": bufs[out_r].decode("utf-8", "replace"),
            "stderr": bufs[err_r].decode("utf-8", "replace"),
            "output_bytes": counts[out_r] + counts[err_r],
            "report": bufs[rep_r].decode("utf-8", "replace"),
            "wall_ms": round(wall_ms, 3),
            "cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1000, 3),
            "maxrss_kb": ru.ru_maxrss,
        }

    def _wipe(self, jobdir: str) -> bool:
        """Remove what the job could write: its directory and, when it shares our uid (not
        root), every other entry of the job root too, which it owns as much as we do, so
        that nothing reaches the next job. False if something could not be removed."""
        shared = self.uid is None
        targets = [os.path.join(self.root, n) for n in os.listdir(self.root)] if shared else []
        try:
            for path in targets or [jobdir]:
                if os.path.isdir(path) and not os.path.islink(path):
                    try:
                        shutil.rmtree(path)
                    except OSError:
                        if not shared:
                            raise
                        _unlock(path)  # the job chmod'ed dirs shut: they are ours too
                        shutil.rmtree(path)
                else:
                    os.unlink(path)
            return not (shared and os.listdir(self.root))
        except OSError:
            return False

    def _kill_all(self, pid: int) -> None:
        if self.cleanup == "pidns":
            try:
                os.kill(-1, signal.SIGKILL)  # pid 1 is spared: everything else is the job's
            except ProcessLookupError:
                pass
        elif self.cleanup == "uid" and self.uid is not None:
            helper = os.fork()
            if helper == 0:  # pragma: no cover
                try:
                    os.setresgid(self.uid, self.uid, self.uid)
                    os.setresuid(self.uid, self.uid, self.uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(helper, 0)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _reap(self) -> None:
        """Reap every child (orphans come to us: pid 1, or a subreaper). A zombie still
        counts against the slot uid's RLIMIT_NPROC, so none may outlive the job."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                if self.cleanup == "session":
                    return  # processes that left the session are not ours to wait for
                self._kill_all(-1)
                try:
                    os.waitpid(-1, 0)
                except ChildProcessError:
                    return

    # -- the job process ---------------------------------------------------------------
    def _child(
        self, req: dict[str, Any], lim: dict[str, Any], jobdir: str, out: int, err: int, rep: int
    ) -> None:
        code = 70
        try:
            os.setsid()
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.dup2(rep, 3)
            os.closerange(4, 65536)
            kind = req.get("kind", "python")
            try:  # jobs, not the server, are what an out-of-memory kill should pick
                with open("/proc/self/oom_score_adj", "w") as fh:
                    fh.write("1000")
            except OSError:
                pass
            nproc_base = self._limits(lim, kind)
            if self.uid is not None:
                gid = self.gid if self.gid is not None else self.uid
                os.setgroups([])
                os.setresgid(gid, gid, gid)
                os.setresuid(self.uid, self.uid, self.uid)
            self.libc.prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: own /proc/self for the job
            if self.seccomp is not None:
                self.seccomp()
            os.chdir(jobdir)
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": os.path.join(jobdir, "home"),
                "TMPDIR": os.path.join(jobdir, "tmp"),
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONIOENCODING": "utf-8",
            }
            for k, v in req.get("env", {}).items():
                if k not in env and k.isidentifier():
                    env[k] = str(v)
            os.environ.clear()
            os.environ.update(env)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            if kind == "node":
                argv = [self.cfg["node"], *req.get("node_args", [])]
                argv += [self.cfg["jsrunner"], *req["argv"]]
                os.execve(argv[0], argv, env)
            import random
            import tempfile

            random.seed(os.urandom(16))
            tempfile.tempdir = None
            # The job's own std streams, open for the rest of its life.
            sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
            kw = {"encoding": "utf-8", "errors": "backslashreplace", "closefd": False}
            sys.stdout = open(1, "w", **kw)  # type: ignore[call-overload]  # noqa: SIM115
            sys.stderr = open(2, "w", **kw)  # type: ignore[call-overload]  # noqa: SIM115
            sys.argv = [req.get("solution_file", "main.py")]
            if kind == "python":
                self.runner.run(req, 3)
            elif kind == "probe":
                self.probe.run({**req, "nproc": [self.nproc_scope, nproc_base]}, 3)
            else:
                raise ValueError(f"unknown job kind {kind!r}")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            try:
                os.write(2, traceback.format_exc().encode()[-4000:])
            except Exception:
                pass
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            os._exit(code)

    def _limits(self, lim: dict[str, Any], kind: str) -> int:
        """Set the job's rlimits; returns what was added to its process limit for tasks
        that are not the job's but count against it (see `nproc_scope`)."""
        mb = 1 << 20
        cpu = max(1, int(float(lim.get("cpu_s", 5)) + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        fsize = int(lim.get("file_mb", 32)) * mb
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        nofile = int(lim.get("nofile", 256))
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        base = 0
        if self.nproc_scope == "jail":
            base = tasks_of(os.getuid()) - 1  # the server's tasks (this process is the job's own)
        elif self.nproc_scope == "host":
            base = self.nproc_base
        nproc = int(lim.get("nproc", 32)) + base
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        mem = int(lim.get("memory_mb", 1024)) * mb
        if kind == "node":
            # V8 reserves address space far beyond what it uses: limit data, not AS.
            resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
        else:
            # Relative to what the forked server already maps (LiveBench PR #536).
            resource.setrlimit(resource.RLIMIT_AS, (self.vm_size + mem, self.vm_size + mem))
        return base


def _unlock(top: str) -> None:
    """Make a tree the job left behind removable again (top-down, so each level can be
    listed once its parent is open; symlinks are not followed)."""
    os.chmod(top, 0o700)
    for dirpath, dirnames, _ in os.walk(top):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)


def tasks_of(uid: int) -> int:
    """Tasks (threads count: RLIMIT_NPROC counts them) of `uid` that we can see."""
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/status") as fh:
                    fields = dict(line.split(":", 1) for line in fh if ":" in line)
                if int(fields["Uid"].split()[0]) == uid:
                    n += int(fields.get("Threads", "1"))
            except (OSError, KeyError, ValueError):
                continue
    return n


def _nproc_counted_in_jail() -> bool:
    """Whether RLIMIT_NPROC counts only this user namespace's tasks (Linux >= 5.14
    accounts per user namespace) rather than every task of our uid on the host. Measured:
    a child allows itself exactly one more task than it can see here and forks once."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover  (runs in the child)
        code = 1
        try:
            limit = tasks_of(os.getuid()) + 1
            resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
            kid = os.fork()
            if kid == 0:
                os._exit(0)
            os.waitpid(kid, 0)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _vm_size() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    cfg = json.loads(sys.argv[1])
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the parent's EOF or SIGKILL stop us
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans of a job come back to us
    libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: a job of the same uid cannot ptrace us
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the parent
    Server(cfg).serve(fd_in, fd_out)


if __name__ == "__main__":
    main()
