"""Backends and their start-up probe (fail closed), the settings file, the CLI, and the
`unit_tests` verifier as a recipe uses it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from sandbox_kit import ADD, ADD_TESTS, LIMITS, SETTINGS, needs_root, run

from synth.chain import Chain, Named
from synth.cli import main
from synth.context import Context
from synth.errors import SandboxError
from synth.records import Record
from synth.registry import lookup
from synth.sandbox import SandboxLimits, get_pool, jail, layers, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_default_limits_file_matches_the_builtin_defaults() -> None:
    settings = load_settings(base_dir=ROOT)
    assert settings.backend == "bwrap"
    assert settings.limits == SandboxLimits()  # verifiers/sandbox.yaml and the code agree
    over = load_settings({"limits": {"wall_s": 3}}, base_dir=ROOT)
    assert over.limits.wall_s == 3 and over.limits.cpu_s == SandboxLimits().cpu_s


def test_bad_limit_overrides_are_config_errors() -> None:
    from synth.errors import ConfigError

    with pytest.raises(ConfigError, match="wall_s"):
        load_settings({"limits": {"wall_s": "fast"}}, base_dir=ROOT)
    with pytest.raises(ConfigError, match="backend"):
        load_settings({"backend": "docker"}, base_dir=ROOT)


@needs_root
def test_a_layer_that_fails_its_probe_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend LANG is not on the allow-list: the real probe then sees a "leaked" variable.
    monkeypatch.setattr(layers, "ALLOWED_ENV", layers.ALLOWED_ENV - {"LANG"})
    settings = replace(SETTINGS, disk_mb=17, workers=1)
    with pytest.raises(SandboxError, match="scrubbed environment"):
        run(ADD, ADD_TESTS, settings=settings)
    get_pool(settings).close()


def test_missing_bubblewrap_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> str:
        raise SandboxError("bubblewrap not found")

    monkeypatch.setattr(jail, "bwrap_path", missing)
    settings = replace(SETTINGS, disk_mb=18, workers=1)
    with pytest.raises(SandboxError, match="bubblewrap"):
        run(ADD, ADD_TESTS, settings=settings)
    get_pool(settings).close()


@needs_root
def test_unsafe_local_warns_loudly_and_still_judges(capsys: pytest.CaptureFixture[str]) -> None:
    settings = replace(SETTINGS, backend="unsafe-local", workers=1)
    assert run(ADD, ADD_TESTS, settings=settings).ok
    assert not run(ADD.replace("+", "-"), ADD_TESTS, settings=settings).ok
    assert "WITHOUT namespace" in capsys.readouterr().err
    report = asyncio.run(get_pool(settings).layers())
    by_name = {la.name: la for la in report}
    assert not by_name["namespaces"].ok and not by_name["namespaces"].required
    assert by_name["seccomp"].ok and by_name["slot uid"].ok
    get_pool(settings).close()


@needs_root
def test_cli_check_lists_working_layers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "check", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    for name in ("namespaces", "seccomp", "slot uid", "rlimits", "scrubbed environment"):
        assert f"[ok  ] {name}" in out
    assert "all required layers work" in out


@needs_root
def test_cli_run_exit_status_is_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "solution.py").write_text(ADD)
    (tmp_path / "wrong.py").write_text(ADD.replace("a + b", "a - b"))
    (tmp_path / "test_solution.py").write_text(ADD_TESTS)
    (tmp_path / "test_wrong.py").write_text(ADD_TESTS.replace("solution", "wrong"))
    args = ["sandbox", "run", "--root", str(ROOT)]
    assert (
        main([*args, str(tmp_path / "solution.py"), "--tests", str(tmp_path / "test_solution.py")])
        == 0
    )
    assert "PASSED: 2/2" in capsys.readouterr().out
    assert (
        main([*args, str(tmp_path / "wrong.py"), "--tests", str(tmp_path / "test_wrong.py")]) == 1
    )
    assert "FAILED tests_failed" in capsys.readouterr().out
    assert main([*args, str(tmp_path / "nope.py"), "--tests", str(tmp_path / "test_wrong.py")]) == 2


@needs_root
def test_unit_tests_verifier_records_per_test_results() -> None:
    make = lookup("verifier", "unit_tests").factory
    chain = Chain([Named("unit_tests", make(limits=LIMITS.as_dict(), workers=2, disk_mb=16))])
    ctx = Context(seed=1, base_dir=ROOT)
    good = Record("a", {"solution": ADD, "tests": ADD_TESTS, "language": "python"})
    bad = Record("b", {"solution": ADD.replace("a + b", "a + b + (a > 0)"), "tests": ADD_TESTS})

    async def go() -> list[tuple[Record, object]]:
        return [await chain.check(r, ctx) for r in (good, bad)]

    (kept, ok), (rejected, verdict) = asyncio.run(go())
    assert ok.ok and not verdict.ok  # type: ignore[attr-defined]
    assert rejected.meta["reject_reason"] == "tests_failed"
    info = rejected.meta["verdicts"][0]["info"]
    assert [t["status"] for t in info["tests"]] == ["failed", "passed"]
    assert kept.meta["verdicts"][0]["score"] == 1.0
    assert ctx.stats["rejected_tests_failed"] == 1 and ctx.stats["kept"] == 1
