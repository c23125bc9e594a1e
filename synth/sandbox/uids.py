"""One unprivileged host uid per worker slot, leased with a lock file.

Why per slot and not one shared uid: RLIMIT_NPROC counts every process of a uid on the
host (zombies included), so two slots, or two synth processes, sharing a uid would eat
each other's process budget, and the `uid` cleanup strategy kills by uid. Root ignores
RLIMIT_NPROC entirely, which is why jobs never run as root."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from synth.errors import SandboxError

# Above the ranges distributions hand out to users and to rootless containers (subuid).
UID_BASE = 1_950_000_000
UID_SPAN = 4096
LOCK_DIR = Path("/run/synth-sandbox") if os.access("/run", os.W_OK) else Path("/tmp/.synth-uids")


@dataclass
class UidLease:
    uid: int
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def _uids_in_use() -> set[int]:
    used: set[int] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        used.update(int(x) for x in line.split()[1:])
                        break
        except OSError:
            continue
    return used


def lease(base: int = UID_BASE, span: int = UID_SPAN) -> UidLease:
    """Lock the first free uid in [base, base+span): no other pool holds it and no live
    process runs under it."""
    LOCK_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    busy = _uids_in_use()
    for uid in range(base, base + span):
        if uid in busy:
            continue
        fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return UidLease(uid, fd)
    raise SandboxError(f"no free sandbox uid in {base}..{base + span - 1}")
