"""Shared pieces of the sandbox tests: short limits (the battery must stay fast), a
synchronous `run`, and the outside view of a pool (processes left under its slot uids)."""

from __future__ import annotations

import asyncio
import os
import shutil
from typing import Any

import pytest

from synth.sandbox import JobOutcome, SandboxLimits, SandboxSettings, get_pool, run_tests

LIMITS = SandboxLimits(wall_s=2.0, cpu_s=1.0, memory_mb=256, output_kb=64, file_mb=4, nproc=16)
SETTINGS = SandboxSettings(backend="bwrap", workers=2, disk_mb=16, limits=LIMITS)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="per-slot uids need root")
needs_node = pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")

# A test file that calls `attack()` from the solution: the attack runs inside a test.
CALL_ATTACK = "from solution import attack\n\ndef test_attack():\n    assert attack() == 1\n"
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = (
    "from solution import add\n\n"
    "def test_small():\n    assert add(1, 2) == 3\n\n"
    "def test_negative():\n    assert add(-5, 5) == 0\n"
)


def run(
    solution: str,
    tests: str = CALL_ATTACK,
    *,
    settings: SandboxSettings = SETTINGS,
    language: str = "python",
    **limits: Any,
) -> JobOutcome:
    lim = settings.limits.merged(limits) if limits else settings.limits
    return asyncio.run(run_tests(solution, tests, language=language, settings=settings, limits=lim))


def slot_uids(settings: SandboxSettings = SETTINGS) -> set[int]:
    pool = get_pool(settings)
    return {s.uid for s in pool._slots if s.uid is not None}


def processes_of(uids: set[int]) -> list[int]:
    """Host pids running under any of `uids` (what a leaked daemon would look like)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if {int(x) for x in line.split()[1:]} & uids:
                            found.append(int(pid))
                        break
        except OSError:
            continue
    return found


def healthy(settings: SandboxSettings = SETTINGS) -> None:
    """The pool still judges a normal job correctly, on every slot."""
    for _ in range(settings.workers):
        out = run(ADD, ADD_TESTS, settings=settings)
        assert out.ok, out.feedback()
        bad = run(ADD.replace("a + b", "a - b"), ADD_TESTS, settings=settings)
        assert not bad.ok and bad.reason == "tests_failed"
