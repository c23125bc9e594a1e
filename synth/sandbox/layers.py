"""Judging the start-up probe: which isolation layers really work here.

A probe job reports what it can observe from inside (its uid, capabilities, seccomp
mode, namespaces, rlimits, environment, whether /usr is writable...). Each layer below is
checked against what the parent expects; a required layer that does not hold makes the
pool refuse to run anything (fail closed)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from synth.sandbox.limits import SandboxSettings

ALLOWED_ENV = {
    "PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING",
}  # fmt: skip


ALWAYS_REQUIRED = {"rlimits", "scrubbed environment", "new session", "stdin closed"}


@dataclass(frozen=True)
class Layer:
    name: str
    ok: bool
    required: bool
    detail: str


def _own_ns(name: str) -> str:
    try:
        return os.readlink(f"/proc/self/ns/{name}")
    except OSError:
        return ""


def _secret_values() -> list[str]:
    """Values of this process's environment worth protecting (long enough to be keys)."""
    return [v for v in os.environ.values() if len(v) >= 8 and v not in ("/usr/bin:/bin",)]


def evaluate(
    settings: SandboxSettings, facts: dict[str, Any], uid: int | None, cgroup: str | None = None
) -> list[Layer]:
    jailed = settings.backend == "bwrap"
    out: list[Layer] = []

    def add(name: str, ok: bool, detail: str, required: bool = True) -> None:
        # unsafe-local is the user's informed choice: only what every backend can always
        # do stays mandatory there; the rest is reported, not enforced.
        required = required and (jailed or name in ALWAYS_REQUIRED)
        out.append(Layer(name, bool(ok), required, detail))

    ns = facts.get("ns", {})
    fresh = [n for n in ("net", "pid", "ipc", "uts", "mnt") if ns.get(n) and ns[n] != _own_ns(n)]
    add(
        "namespaces",
        len(fresh) == 5,
        f"new {', '.join(fresh) or 'none'} namespace(s)" + ("" if jailed else " (unsafe-local)"),
        jailed,
    )
    add(
        "no network",
        "net" in fresh or facts.get("inet_socket") == "EPERM",
        ("network namespace" if "net" in fresh else "no network namespace")
        + f"; AF_INET socket: {facts.get('inet_socket')}",
    )
    pids = facts.get("pids_visible", [])
    add(
        "pid isolation + cleanup",
        jailed and set(pids) <= {1, facts.get("pid")},
        f"job sees pids {pids[:8]}; daemons are killed with kill(-1) from pid 1"
        if jailed
        else "no pid namespace: cleanup by uid sweep"
        if uid is not None
        else "session kill only",
        jailed,
    )
    refused = ("EROFS", "EACCES", "EPERM")
    add(
        "read-only system",
        all(facts.get(k) in refused for k in ("write_usr", "write_root", "write_dev_shm")),
        f"write /usr: {facts.get('write_usr')}, write /: {facts.get('write_root')}, "
        f"write /dev/shm: {facts.get('write_dev_shm')}",
    )
    cap = settings.disk_mb << 20
    fs_bytes = int(facts.get("job_fs_bytes", 0))
    add(
        "job tmpfs quota",
        jailed and 0 < fs_bytes <= cap,
        f"job dir filesystem {fs_bytes >> 20} MiB (limit {settings.disk_mb} MiB)",
        jailed,
    )
    if uid is not None:
        ok = (
            facts.get("uid") == uid
            and facts.get("euid") == uid
            and facts.get("groups") == []
            and int(str(facts.get("cap_eff", "1")) or "1", 16) == 0
        )
        add("slot uid", ok, f"jobs run as uid {facts.get('uid')} (slot uid {uid}), caps "
            f"{facts.get('cap_eff')}")  # fmt: skip
    else:
        add(
            "slot uid",
            int(str(facts.get("cap_eff", "1")) or "1", 16) == 0,
            "not root: jobs share synth's uid "
            + ("inside a user namespace (no per-slot uid)" if jailed else "(no per-slot uid)"),
        )
    lim = settings.limits
    rl = facts.get("rlimits", {})
    want = {
        "CPU": int(lim.cpu_s + 0.999) or 1,
        "FSIZE": lim.file_mb << 20,
        "NOFILE": lim.nofile,
        "CORE": 0,
    }
    # What else counts against the job's process limit (see the fork server's
    # `nproc_scope`): nothing for a slot uid, the server in a user namespace, or every
    # task of synth's uid on the host (older kernels, and unsafe-local when not root).
    scope, base = (list(facts.get("nproc") or ["uid", 0]) + ["uid", 0])[:2]
    want["NPROC"] = lim.nproc + int(base)
    sane = {"uid": int(base) == 0, "jail": 0 <= int(base) <= 16, "host": int(base) >= 0}
    wrong = {k: rl.get(k) for k, v in want.items() if rl.get(k) != v}
    as_ok = 0 < int(rl.get("AS", -1)) <= (lim.memory_mb << 20) + (4 << 30)
    counted = {
        "uid": "",
        "jail": f" ({lim.nproc} + {base} of the server, counted in the jail)",
        "host": f" ({lim.nproc} + {base}: the kernel counts synth's uid on the whole host)",
    }
    add(
        "rlimits",
        not wrong and as_ok and sane.get(str(scope), False),
        f"cpu {rl.get('CPU')} s, as {int(rl.get('AS', -1)) >> 20} MiB, nproc {rl.get('NPROC')}"
        f"{counted.get(str(scope), f' (unknown scope {scope!r})')}, "
        f"fsize {int(rl.get('FSIZE', -1)) >> 20} MiB, nofile {rl.get('NOFILE')}, core "
        f"{rl.get('CORE')}" + (f"; wrong: {wrong}" if wrong else ""),
    )
    add(
        "seccomp",
        str(facts.get("seccomp")) == "2" and facts.get("inet_socket") == "EPERM",
        f"mode {facts.get('seccomp')}, AF_INET socket -> {facts.get('inet_socket')}",
        settings.seccomp,
    )
    env = facts.get("env", {})
    extra = sorted(set(env) - ALLOWED_ENV)
    text = repr(facts)
    leaked = [v for v in _secret_values() if v in text and v not in env.values()]
    add(
        "scrubbed environment",
        not extra and not leaked,
        f"variables: {', '.join(sorted(env))}"
        + (f"; unexpected: {extra}" if extra else "")
        + (f"; {len(leaked)} parent value(s) visible!" if leaked else ""),
    )
    readable = facts.get("environ_readable") or []
    add(
        "other environments hidden",
        not readable,
        f"job can read /proc/PID/environ of pids {readable[:8]}"
        + (" (synth's own uid: its processes, synth included)" if uid is None else "")
        if readable
        else "no other process's environment is readable",
    )
    add(
        "memory cgroup",
        cgroup is not None,
        f"slot bounded as a whole: {cgroup}"
        if cgroup
        else "unavailable here (needs root and a "
        "writable cgroup hierarchy): memory is bounded per process only",
        False,
    )
    add("new session", bool(facts.get("sid_is_self")), "job leads its own session (setsid)")
    add("stdin closed", facts.get("stdin") == "ok", "stdin reads end-of-file at once")
    return out
