"""The sandbox for generated code: run a solution against its tests, hostile or not.

    outcome = await run_tests(solution, tests, language="python")
    outcome.ok, outcome.reason, outcome.tests

Backends share one interface (`execute(Job) -> RawResult`, `layers()`, `close()`):
`bwrap` (default: bubblewrap namespaces + per-slot uid + rlimits + seccomp, fork servers)
and `unsafe-local` (no namespaces; warns loudly). `grading.py` decides verdicts, `layers.py`
what the start-up probe must show, `runtime/` is the code that runs inside the jail."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synth.sandbox.grading import LANGUAGES, JobOutcome, TestResult, judge, prepare
from synth.sandbox.layers import Layer
from synth.sandbox.limits import SandboxLimits, SandboxSettings, load_settings
from synth.sandbox.pool import BACKENDS, ForkServerPool, Job, RawResult, get_pool, shutdown

__all__ = [
    "BACKENDS",
    "LANGUAGES",
    "ForkServerPool",
    "Job",
    "Layer",
    "SandboxLimits",
    "JobOutcome",
    "RawResult",
    "SandboxSettings",
    "TestResult",
    "get_pool",
    "load_settings",
    "run_tests",
    "settings_for",
    "shutdown",
]


def settings_for(config: Mapping[str, Any] | None, base_dir: Path | None = None) -> SandboxSettings:
    """Settings from `verifiers/sandbox.yaml` overridden by a recipe's step/verifier config."""
    return load_settings(config, base_dir=base_dir)


async def run_tests(
    solution: str,
    tests: str,
    *,
    language: str = "python",
    settings: SandboxSettings | None = None,
    limits: SandboxLimits | None = None,
    module: str = "solution",
) -> JobOutcome:
    """Run `tests` against `solution` in the sandbox and judge the run."""
    settings = settings or load_settings()
    limits = limits or settings.limits
    prep = prepare(solution, tests, language, limits, module)
    if prep.early is not None:
        return prep.early
    assert prep.job is not None
    pool = BACKENDS[settings.backend](settings)
    raw = await pool.execute(prep.job)
    return judge(prep, raw, limits, language)
