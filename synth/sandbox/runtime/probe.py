"""Facts a job can observe about its own jail, reported to the parent, which decides
whether every layer it requires is really there (the sandbox fails closed otherwise)."""

from __future__ import annotations

import errno
import os
import resource
import socket
from typing import Any

from .encode import dumps


def _status_fields() -> dict[str, str]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _try(fn: Any) -> str:
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    except Exception as exc:
        return type(exc).__name__


def _write_and_remove(path: str) -> Any:
    def attempt() -> None:
        # Without a jail this is the host's /dev/shm: leave nothing there.
        with open(path, "x"):
            pass
        os.unlink(path)

    return attempt


def run(req: dict[str, Any], fd: int) -> None:
    st = _status_fields()
    ns = {}
    for name in ("net", "pid", "ipc", "uts", "mnt"):
        try:
            ns[name] = os.readlink(f"/proc/self/ns/{name}")
        except OSError:
            ns[name] = ""
    environ_leak = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    if fh.read():
                        environ_leak.append(int(pid))
            except OSError:
                pass
    stv = os.statvfs(".")
    facts = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "cap_eff": st.get("CapEff", ""),
        "seccomp": st.get("Seccomp", ""),
        "no_new_privs": st.get("NoNewPrivs", ""),
        "pid": os.getpid(),
        "pids_visible": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "sid_is_self": os.getsid(0) == os.getpid(),
        "ns": ns,
        "env": dict(os.environ),
        "environ_readable": environ_leak,
        "cwd": os.getcwd(),
        "job_fs_bytes": stv.f_blocks * stv.f_frsize,
        "rlimits": {
            name: resource.getrlimit(getattr(resource, "RLIMIT_" + name))[0]
            for name in ("CPU", "AS", "DATA", "FSIZE", "NOFILE", "NPROC", "CORE")
        },
        "inet_socket": _try(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
        "write_usr": _try(lambda: open("/usr/.synth_probe", "w").close()),
        "write_dev_shm": _try(_write_and_remove(f"/dev/shm/.synth_probe_{os.getpid()}")),
        "write_root": _try(lambda: open("/.synth_probe", "w").close()),
        "kill_pid1": _try(lambda: os.kill(1, 0)),
        "stdin": _try(lambda: os.read(0, 1) and None),
        # How the server set RLIMIT_NPROC: [scope, tasks not the job's that count too].
        "nproc": req.get("nproc", ["uid", 0]),
    }
    os.write(fd, (dumps(_plain(facts)) + "\n").encode())


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v
