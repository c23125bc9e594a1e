"""The containment battery: hostile code run through the default backend, judged from
outside the sandbox (host files, host processes, the test process itself, a real
loopback listener), then the pool must still judge a normal job correctly."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from sandbox_kit import (
    CALL_ATTACK,
    SETTINGS,
    healthy,
    needs_node,
    needs_root,
    processes_of,
    run,
    slot_uids,
)

from synth.sandbox import get_pool

pytestmark = needs_root


@pytest.fixture(autouse=True, scope="module")
def started_pool() -> None:
    """Start the workers first, so the timing checks below time the jobs, not start-up."""
    asyncio.run(get_pool(SETTINGS).start())


def attack(body: str) -> str:
    return "import os, sys, time\n\ndef attack():\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )


def test_infinite_loop_is_a_timeout() -> None:
    t0 = time.monotonic()
    out = run(attack("while True:\n    pass\n"))
    assert out.reason == "timeout" and not out.ok
    assert time.monotonic() - t0 < 6
    assert "test_attack" in out.detail  # the parent knows which test was running


def test_sleep_forever_hits_the_wall_limit() -> None:
    t0 = time.monotonic()
    out = run(attack("time.sleep(3600)\n"))
    assert out.reason == "timeout"
    assert time.monotonic() - t0 < 6


def test_blocking_on_stdin_gets_eof_not_a_hang() -> None:
    t0 = time.monotonic()
    out = run(attack("return int(input()) + 1\n"))
    assert out.reason == "tests_failed" and "EOFError" in out.tests[0].error
    assert out.wall_ms < 1000 and time.monotonic() - t0 < 3


def test_fork_bomb_is_contained_and_cleaned_up() -> None:
    out = run(
        attack(
            """
            n = 0
            while True:
                try:
                    if os.fork() == 0:
                        time.sleep(60)
                        os._exit(0)
                    n += 1
                except OSError:
                    print("forks", n)
                    time.sleep(0.1)
                    return n
            """
        )
    )
    assert not out.ok
    forks = [int(w) for w in out.stdout.split() if w.isdigit()]
    assert forks and forks[0] <= SETTINGS.limits.nproc  # RLIMIT_NPROC bit (not root)
    assert processes_of(slot_uids()) == []
    healthy()


def test_memory_bomb_is_a_memory_verdict() -> None:
    out = run(attack("blocks = []\nwhile True:\n    blocks.append(bytearray(64 << 20))\n"))
    assert out.reason == "memory", out.feedback()
    healthy()


def test_memory_spread_over_processes_is_bounded_by_the_slot_cgroup() -> None:
    if not any(s.cgroup for s in get_pool(SETTINGS)._slots):
        pytest.skip("no writable cgroup hierarchy here: memory is bounded per process only")
    out = run(
        attack(
            """
            kids = []
            for _ in range(8):  # 8 x 200 MiB, each under its own 256 MiB RLIMIT_AS
                pid = os.fork()
                if pid == 0:
                    block = b"x" * (200 << 20)  # touched, so really resident
                    time.sleep(2)
                    os._exit(0)
                kids.append(pid)
            for pid in kids:
                os.waitpid(pid, 0)
            return 1
            """
        ),
        wall_s=6,
        cpu_s=4,
    )
    assert out.reason == "memory", out.feedback()
    assert processes_of(slot_uids()) == []
    healthy()


def test_disk_fill_stops_at_the_job_quota() -> None:
    out = run(
        attack(
            """
            total = 0
            for i in range(1000):
                try:
                    with open(f"fill{i}", "wb") as fh:
                        for _ in range(4):
                            fh.write(b"x" * (1 << 20))
                            total += 1 << 20
                except OSError as exc:
                    print("stopped", total >> 20, exc.errno)
                    break
            return 0
            """
        )
    )
    words = out.stdout.split()
    assert "stopped" in words
    written_mb = int(words[words.index("stopped") + 1])
    assert written_mb <= SETTINGS.disk_mb  # tmpfs quota, not the host disk
    assert int(words[words.index("stopped") + 2]) == errno.ENOSPC  # the quota, not FSIZE
    # From outside: each jail's job directory is that size-limited tmpfs, and empty again.
    from synth.sandbox.cgroups import server_host_pid

    for slot in get_pool(SETTINGS)._slots:
        assert slot.proc is not None
        job = Path(f"/proc/{server_host_pid(slot.proc.pid)}/root/job")
        fs = os.statvfs(job)
        assert fs.f_blocks * fs.f_frsize <= SETTINGS.disk_mb << 20
        assert not list(job.glob("w/fill*"))
    healthy()


def test_huge_output_is_an_output_limit_without_buffering_it() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    out = run(attack("chunk = 'y' * 65536\nfor _ in range(8192):\n    print(chunk)\n"))
    assert out.reason == "output_limit"
    assert time.monotonic() - t0 < 5
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 64 * 1024  # 512 MiB printed; the parent kept only a capped slice


def test_writing_outside_the_job_dir_reaches_nothing_on_the_host(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    home = Path.home()
    targets = [
        f"/tmp/{tag}",
        f"/var/tmp/{tag}",
        f"/dev/shm/{tag}",
        f"{home}/{tag}",
        f"{tmp_path}/{tag}",
        f"{Path.cwd()}/{tag}",
        f"/etc/{tag}",
        f"/usr/{tag}",
        f"/{tag}",
    ]
    out = run(
        attack(
            f"""
            for path in {targets!r}:
                try:
                    with open(path, "w") as fh:
                        fh.write("pwned")
                    print("wrote", path)
                except OSError as exc:
                    print("refused", path, type(exc).__name__)
            return 1
            """
        )
    )
    for path in targets:
        assert not os.path.exists(path), f"{path} was written on the host"
    # /tmp inside the jail is the job's own directory: a write there is private.
    assert "refused /usr/" in out.stdout and f"refused /etc/{tag}" in out.stdout


def test_persisting_into_site_packages_fails(tmp_path: Path) -> None:
    import site
    import sys

    dirs = {*site.getsitepackages(), f"{sys.base_prefix}/lib/python3.11/site-packages"}
    dirs |= {"/usr/lib/python3/dist-packages", "/usr/local/lib/python3.11/dist-packages"}
    tag = uuid.uuid4().hex
    paths = [f"{d}/{tag}.pth" for d in sorted(dirs)]
    out = run(
        attack(
            f"""
            import sysconfig
            paths = {paths!r} + [sysconfig.get_paths()["purelib"] + "/{tag}.pth"]
            for path in paths:
                try:
                    with open(path, "w") as fh:
                        fh.write("import os; os.system('touch /tmp/{tag}')")
                    print("wrote", path)
                except OSError as exc:
                    print("refused", type(exc).__name__)
            return 1
            """
        )
    )
    assert "wrote" not in out.stdout
    for path in paths:
        assert not os.path.exists(path)
    again = run(f"import sys\n\ndef attack():\n    return int('{tag}' in str(sys.modules))\n")
    assert again.reason == "tests_failed"  # nothing persisted into the next job


def test_parent_secrets_never_reach_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    fresh = SETTINGS.__class__(**{**SETTINGS.__dict__, "workers": 1})  # started with it set
    me = os.getpid()
    out = run(
        attack(
            f"""
            seen = [repr(dict(os.environ))]
            for pid in os.listdir("/proc"):
                for name in ("environ", "cmdline"):
                    try:
                        seen.append(open(f"/proc/{{pid}}/{{name}}", "rb").read().decode())
                    except OSError as exc:
                        seen.append(type(exc).__name__)
            for path in ("/proc/{me}/environ", "/proc/1/environ", "/proc/self/environ"):
                try:
                    seen.append(open(path, "rb").read().decode())
                except OSError as exc:
                    seen.append(type(exc).__name__)
            print("\\n".join(seen))
            return 1
            """
        ),
        settings=fresh,
    )
    blob = out.stdout + out.stderr + repr(out.as_dict())
    assert "OPENAI_API_KEY" not in blob and secret not in blob
    assert "PATH" in out.stdout  # the job did print its environment


def test_no_socket_even_to_loopback() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(0.5)
        port = srv.getsockname()[1]
        out = run(
            attack(
                f"""
                import socket
                for family in (socket.AF_INET, socket.AF_INET6):
                    try:
                        s = socket.socket(family)
                        s.connect(("127.0.0.1" if family == socket.AF_INET else "::1", {port}))
                        print("connected")
                    except OSError as exc:
                        print("blocked", type(exc).__name__)
                return 1
                """
            )
        )
        with pytest.raises(TimeoutError):
            srv.accept()
    assert "connected" not in out.stdout and out.stdout.count("blocked") == 2


def test_killing_the_parent_fails() -> None:
    me = os.getpid()
    out = run(
        attack(
            f"""
            import signal
            for target in ({me}, os.getppid(), 1, -1, 0):
                try:
                    os.kill(target, signal.SIGKILL) if target else os.killpg(1, 9)
                    print("sent", target)
                except OSError as exc:
                    print("refused", target, type(exc).__name__)
            return 1
            """
        )
    )
    assert f"refused {me}" in out.stdout  # the host pid does not even exist in the jail
    healthy()  # the test process and both fork servers survived


def test_daemonised_child_is_killed_and_reaped() -> None:
    out = run(
        attack(
            """
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.closerange(0, 64)
                    while True:
                        time.sleep(0.05)
                os._exit(0)
            time.sleep(0.1)
            return 1
            """
        )
    )
    assert out.ok  # the attack itself "passes": what matters is what it left behind
    assert processes_of(slot_uids()) == []
    healthy()


def _ipc_objects_of_the_jails() -> list[str]:
    """System V IPC objects in each fork server's IPC namespace, listed from outside: a
    helper process joins that namespace (setns) and reads /proc/sysvipc."""
    import subprocess
    import sys

    from synth.sandbox.cgroups import server_host_pid

    code = (
        "import ctypes, os, sys\n"
        "fd = os.open(f'/proc/{sys.argv[1]}/ns/ipc', os.O_RDONLY)\n"
        "assert ctypes.CDLL(None, use_errno=True).setns(fd, 0x08000000) == 0\n"
        "for kind in ('shm', 'sem', 'msg'):\n"
        "    print(*open(f'/proc/sysvipc/{kind}').read().splitlines()[1:], sep='\\n')\n"
    )
    found = []
    for slot in get_pool(SETTINGS)._slots:
        assert slot.proc is not None
        server = server_host_pid(slot.proc.pid)
        assert server is not None
        out = subprocess.run(
            [sys.executable, "-I", "-c", code, str(server)], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        found += [line for line in out.stdout.splitlines() if line.strip()]
    return found


def test_ipc_objects_cannot_outlive_the_job() -> None:
    # A shared memory segment is not a process: killing the job would not free it, and
    # neither RLIMIT_AS nor the job tmpfs counts it once detached.
    for _ in range(SETTINGS.workers):
        out = run(
            attack(
                """
                import ctypes
                libc = ctypes.CDLL(None, use_errno=True)
                libc.shmat.restype = ctypes.c_void_p
                shm = libc.shmget(0, 16 << 20, 0o1600)
                if shm >= 0:
                    ctypes.memset(libc.shmat(shm, None, 0), 1, 16 << 20)
                made = [shm, libc.semget(0, 1, 0o1600), libc.msgget(0, 0o1600)]
                if hasattr(libc, "mq_open"):
                    made.append(libc.mq_open(b"/synthq", 0o100 | 2, 0o600, None))
                print("made", *made)
                return 1
                """
            )
        )
        assert "made" in out.stdout and set(out.stdout.split()[1:]) == {"-1"}, out.stdout
    assert _ipc_objects_of_the_jails() == []
    healthy()


@needs_node
def test_javascript_jobs_are_jailed_the_same_way() -> None:
    tag = uuid.uuid4().hex
    sol = textwrap.dedent(
        f"""
        const fs = require('fs');
        function leak() {{
          const out = [JSON.stringify(process.env)];
          for (const p of ['/tmp/{tag}', '/usr/{tag}', '{Path.cwd()}/{tag}']) {{
            try {{ fs.writeFileSync(p, 'x'); out.push('wrote ' + p); }}
            catch (e) {{ out.push('refused ' + e.code); }}
          }}
          return out.join('\\n');
        }}
        function spin() {{ for (;;) {{}} }}
        module.exports = {{ leak, spin }};
        """
    )
    tests = (
        "test('leak', () => { console.log(leak()); assertTrue(true); });\n"
        "test('spin', () => { spin(); });\n"
    )
    out = run(sol, tests, language="javascript")
    assert out.reason == "timeout"
    assert "OPENAI_API_KEY" not in out.stdout and "wrote /usr" not in out.stdout
    assert not os.path.exists(f"/tmp/{tag}") and not os.path.exists(f"{Path.cwd()}/{tag}")
    assert processes_of(slot_uids()) == []
    healthy()


def test_a_cancelled_job_does_not_poison_the_next_one() -> None:
    from synth.sandbox import run_tests

    async def cancel_midway() -> None:
        job = run_tests(attack("time.sleep(30)\n"), CALL_ATTACK, settings=SETTINGS)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(job, 0.3)

    asyncio.run(cancel_midway())
    healthy()  # a stale reply left in the pipe would be read as the next job's verdict
    assert processes_of(slot_uids()) == []


def test_no_job_sees_the_files_of_an_earlier_job() -> None:
    paths = "['/tmp/left', os.path.expanduser('~/left'), 'left', os.environ['TMPDIR'] + '/x']"
    for _ in range(2 * SETTINGS.workers):  # every slot writes, then every slot looks
        run(attack(f"for p in {paths}:\n    open(p, 'w').write('x')\nreturn 1\n"))
    for _ in range(2 * SETTINGS.workers):
        out = run(attack(f"return int(any(os.path.exists(p) for p in {paths}))\n"))
        assert out.reason == "tests_failed" and "assert 0 == 1" in out.tests[0].error
