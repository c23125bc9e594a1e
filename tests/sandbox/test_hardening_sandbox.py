"""Issue 19: a job that ran into a limit is not a pass, even when it caught the failure
and exited 0. The kernel counts what the slot's cgroups refused (pids: a fork or thread;
memory: the slot's limit), so the verdict does not depend on what the job says."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from sandbox_kit import SETTINGS, healthy, needs_root, processes_of, run, slot_uids

from synth.context import Context
from synth.records import Record
from synth.registry import lookup
from synth.sandbox import get_pool

pytestmark = needs_root


@pytest.fixture(autouse=True, scope="module")
def pids_cgroup() -> None:
    pool = get_pool(SETTINGS)
    asyncio.run(pool.start())
    if not all(s.cgroup is not None and "pids" in s.cgroup.dirs for s in pool._slots):
        pytest.skip("no writable pids cgroup here: a caught fork failure cannot be seen")


def attack(body: str) -> str:
    return "import os, time\n\ndef attack():\n" + textwrap.indent(textwrap.dedent(body), "    ")


CAUGHT_FORK = attack(
    """
    n = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError:
        pass  # swallowed: the test still passes and the process exits 0
    return 1
    """
)
CALL_ATTACK = "from solution import attack\n\ndef test_attack():\n    assert attack() == 1\n"


def test_a_caught_fork_failure_is_a_resource_limit() -> None:
    # (Thread starts usually fail first on RLIMIT_AS, glibc reserving 64 MiB of address
    # space per thread arena; a refused mmap leaves no kernel count, so that is not seen.)
    out = run(CAUGHT_FORK, CALL_ATTACK)
    assert not out.ok
    assert out.reason == "resource_limit", out.feedback()
    assert "process limit" in out.detail and out.extra["limits_hit"] == ["nproc"]
    assert out.tests[0].status == "passed"  # what the job said; the kernel says otherwise
    assert processes_of(slot_uids()) == []
    healthy()


def test_the_limit_is_the_configured_one_and_resets_between_jobs() -> None:
    """Up to `nproc` tasks is fine, on every slot and after a job that hit the cap."""
    under = attack(
        f"""
        kids = []
        for _ in range({SETTINGS.limits.nproc - 2}):
            pid = os.fork()
            if pid == 0:
                time.sleep(0.2)
                os._exit(0)
            kids.append(pid)
        for pid in kids:
            os.waitpid(pid, 0)
        return 1
        """
    )
    for _ in range(2 * SETTINGS.workers):
        assert run(CAUGHT_FORK, CALL_ATTACK).reason == "resource_limit"
        out = run(under, CALL_ATTACK)
        assert out.ok, out.feedback()


def test_unit_tests_rejects_a_resource_limit() -> None:
    check = lookup("verifier", "unit_tests").factory(
        backend=SETTINGS.backend,
        workers=SETTINGS.workers,
        disk_mb=SETTINGS.disk_mb,
        limits=SETTINGS.limits.as_dict(),
    )
    record = Record("r1", {"solution": CAUGHT_FORK, "tests": CALL_ATTACK}, {})
    verdict = asyncio.run(check(record, Context(seed=0)))
    assert not verdict.ok and verdict.reason == "resource_limit", verdict
