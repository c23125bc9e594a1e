"""A seccomp-bpf deny-list, assembled by hand so it needs no library inside the jail.

Denied with EPERM: sockets other than AF_UNIX, ptrace and process_vm_*, mount and the new
mount API, unshare/setns and namespace-creating clone flags, bpf, keyrings, io_uring,
perf_event_open, userfaultfd, kernel-module and kexec calls, chroot/pivot_root, swap,
reboot, the terminal-injection ioctls TIOCSTI/TIOCLINUX (CVE-2017-5226), and creating
System V shared memory, semaphores and message queues or POSIX message queues: those live
in the jail's IPC namespace, not in a process, so they would outlive the job (memory beyond
its limits, and a channel to the next job). clone3 answers
ENOSYS so libc falls back to clone, whose flags the filter can inspect. Any other ABI on the
same kernel (x32, i386) is refused outright."""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
from collections.abc import Callable
from typing import Any

# (audit arch, syscall numbers by name)
_X86_64 = (
    0xC000003E,
    {
        "socket": 41,
        "ioctl": 16,
        "clone": 56,
        "clone3": 435,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "mount": 165,
        "umount2": 166,
        "unshare": 272,
        "setns": 308,
        "bpf": 321,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "kexec_load": 246,
        "kexec_file_load": 320,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "pivot_root": 155,
        "chroot": 161,
        "swapon": 167,
        "swapoff": 168,
        "reboot": 169,
        "acct": 163,
        "quotactl": 179,
        "syslog": 103,
        "open_by_handle_at": 304,
        "name_to_handle_at": 303,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "pidfd_getfd": 438,
        "kcmp": 312,
        "vhangup": 153,
        "uselib": 134,
        "iopl": 172,
        "ioperm": 173,
        "lookup_dcookie": 212,
        "shmget": 29,
        "semget": 64,
        "msgget": 68,
        "mq_open": 240,
    },
)
_AARCH64 = (
    0xC00000B7,
    {
        "socket": 198,
        "ioctl": 29,
        "clone": 220,
        "clone3": 435,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "mount": 40,
        "umount2": 39,
        "unshare": 97,
        "setns": 268,
        "bpf": 280,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "kexec_load": 104,
        "kexec_file_load": 294,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "pivot_root": 41,
        "chroot": 51,
        "swapon": 224,
        "swapoff": 225,
        "reboot": 142,
        "acct": 89,
        "quotactl": 60,
        "syslog": 116,
        "open_by_handle_at": 265,
        "name_to_handle_at": 264,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "fspick": 433,
        "mount_setattr": 442,
        "pidfd_getfd": 438,
        "kcmp": 272,
        "vhangup": 58,
        "shmget": 194,
        "semget": 190,
        "msgget": 186,
        "mq_open": 180,
    },
)
_ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO, _KILL = 0x7FFF0000, 0x00050000, 0x80000000
_AF_UNIX, _TIOCSTI, _TIOCLINUX = 1, 0x5412, 0x541C
_CLONE_NS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
_CLONE_NS |= 0x40000000 | 0x00000080  # NEWNET and NEWTIME
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24  # offsets in struct seccomp_data (low 32 bits)


def available() -> bool:
    return platform.machine().lower() in _ARCHES


def program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions for this machine's architecture."""
    arch, nr = _ARCHES[platform.machine().lower()]
    denied = [n for name, n in nr.items() if name not in ("socket", "ioctl", "clone", "clone3")]
    # Labels are resolved after layout; each entry is (code, true-label, false-label, k).
    prog: list[tuple[Any, Any, Any, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ, 0, "kill", arch),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if arch == _X86_64[0]:
        prog.append((_JGE, "eperm", 0, 0x40000000))  # x32 ABI
    prog += [(_JEQ, "eperm", 0, n) for n in denied]
    prog += [
        (_JEQ, "enosys", 0, nr["clone3"]),
        (_JEQ, "socket", 0, nr["socket"]),
        (_JEQ, "ioctl", 0, nr["ioctl"]),
        (_JEQ, "clone", 0, nr["clone"]),
        (_RET, 0, 0, _ALLOW),
        ("socket:", 0, 0, 0),
        (_LD_W_ABS, 0, 0, _ARG0),
        (_JEQ, "allow", "eperm", _AF_UNIX),
        ("ioctl:", 0, 0, 0),
        (_LD_W_ABS, 0, 0, _ARG1),
        (_JEQ, "eperm", 0, _TIOCSTI),
        (_JEQ, "eperm", "allow", _TIOCLINUX),
        ("clone:", 0, 0, 0),
        (_LD_W_ABS, 0, 0, _ARG0),
        (_JSET, "eperm", "allow", _CLONE_NS),
        ("allow:", 0, 0, 0),
        (_RET, 0, 0, _ALLOW),
        ("eperm:", 0, 0, 0),
        (_RET, 0, 0, _ERRNO | errno.EPERM),
        ("enosys:", 0, 0, 0),
        (_RET, 0, 0, _ERRNO | errno.ENOSYS),
        ("kill:", 0, 0, 0),
        (_RET, 0, 0, _KILL),
    ]
    labels: dict[str, int] = {}
    out: list[tuple[int, Any, Any, int]] = []
    for ins in prog:
        if isinstance(ins[0], str):
            labels[ins[0][:-1]] = len(out)
        else:
            out.append(ins)

    def rel(target: Any, at: int) -> int:
        if isinstance(target, int):
            return target
        off = labels[target] - at - 1
        if not 0 <= off <= 255:
            raise ValueError("seccomp jump out of range")
        return off

    return [(c, rel(jt, i), rel(jf, i), k) for i, (c, jt, jf, k) in enumerate(out)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> None:
    """Set no_new_privs and load the filter into the calling process (inherited by its
    children and across exec). Raises OSError if the kernel refuses."""
    prepare()()


def prepare() -> Callable[[], None]:
    """Assemble the filter now and return the function that loads it, so the per-job cost
    in a forked child is two prctl calls."""
    prog = program()
    raw = b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in prog)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    addr = ctypes.addressof(fprog)

    def load() -> None:
        _keep = (buf, fprog)  # the kernel reads these during the call
        if prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if prctl(22, 2, addr, 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
        del _keep

    return load
