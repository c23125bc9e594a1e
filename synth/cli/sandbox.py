"""`synth sandbox check` (which isolation layers work here) and
`synth sandbox run SOLUTION --tests TESTS` (one verdict; exit 0 only on a pass)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sandbox",
        help="check the code sandbox's isolation layers, or run a solution against tests",
        description="The sandbox runs generated code jailed (bubblewrap namespaces, a "
        "per-worker uid, rlimits, seccomp). `check` probes every layer on this machine; "
        "`run` judges one solution against its tests and exits 0 only if they all pass.",
    )
    sp = p.add_subparsers(dest="action", metavar="ACTION")
    c = sp.add_parser("check", help="probe each isolation layer and print what works here")
    _common(c)
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.set_defaults(func=run_check)
    r = sp.add_parser("run", help="run SOLUTION against --tests and print one verdict")
    r.add_argument("solution", help="solution file (.py or .js)")
    r.add_argument("--tests", required=True, help="test file (pytest/unittest/asserts, or JS)")
    r.add_argument("--language", choices=["python", "javascript"], help="default: by suffix")
    r.add_argument("--wall", type=float, help="wall-clock limit in seconds")
    r.add_argument("--memory", type=int, help="memory limit in MiB")
    r.add_argument("--json", action="store_true", help="print the full outcome as JSON")
    _common(r)
    r.set_defaults(func=run_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=["bwrap", "unsafe-local"],
        help="bwrap (default, isolating) or unsafe-local (no namespaces: warns loudly)",
    )
    p.add_argument("--root", default=".", help="project folder holding verifiers/sandbox.yaml")


def _settings(args: argparse.Namespace, limits: dict[str, Any] | None = None) -> Any:
    from synth.sandbox import load_settings

    over: dict[str, Any] = {"workers": 1}
    if args.backend:
        over["backend"] = args.backend
    if limits:
        over["limits"] = limits
    return load_settings(over, base_dir=Path(args.root).resolve())


def run_check(args: argparse.Namespace) -> int:
    import asyncio

    from synth.errors import SandboxError
    from synth.sandbox import jail
    from synth.sandbox.layers import Layer

    settings = _settings(args)

    async def probe() -> tuple[list[Layer], str | None]:
        from synth.sandbox import get_pool, run_tests

        layers = await get_pool(settings).layers()
        js = None
        if jail.node_path(settings):
            out = await run_tests(
                "module.exports = { f: () => 1 };",
                'test("f", () => { assertEqual(f(), 1); });',
                language="javascript",
                settings=settings,
            )
            js = "ok" if out.ok else f"FAILED ({out.reason}: {out.detail})"
        return layers, js

    header = {"backend": settings.backend}
    if settings.backend == "bwrap":
        try:
            path = jail.bwrap_path()
            header["bubblewrap"] = f"{path} ({jail.bwrap_version(path)})"
        except SandboxError as exc:
            header["bubblewrap"] = f"MISSING: {exc}"
    header["python in jail"] = jail.python_path(settings)
    header["node"] = jail.node_path(settings) or "not found (JavaScript jobs unavailable)"
    try:
        layers, js = asyncio.run(probe())
        error = None
    except SandboxError as exc:
        from synth.sandbox import get_pool

        layers, js, error = get_pool(settings).last_layers, None, str(exc)
    if js is not None:
        header["javascript jobs"] = js
    ok = error is None and all(la.ok or not la.required for la in layers)
    if args.json:
        print(json.dumps({**header, "ok": ok, "error": error,
                          "layers": [la.__dict__ for la in layers]}, indent=2))  # fmt: skip
        return 0 if ok else 1
    for k, v in header.items():
        print(f"{k + ':':<17}{v}")
    width = max((len(la.name) for la in layers), default=0)
    for la in layers:
        mark = "ok  " if la.ok else ("FAIL" if la.required else "off ")
        print(f"  [{mark}] {la.name:<{width}}  {la.detail}")
    if error:
        print(f"\n{error}")
    print("\nsandbox: " + ("all required layers work" if ok else "NOT SAFE: failing closed"))
    return 0 if ok else 1


def run_run(args: argparse.Namespace) -> int:
    import asyncio

    from synth.errors import ConfigError
    from synth.sandbox import run_tests

    files = {}
    for label, name in (("solution", args.solution), ("tests", args.tests)):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"{label} file not found", file=name, fix="check the path")
        files[label] = path
    language = args.language or (
        "javascript" if files["solution"].suffix in (".js", ".mjs", ".cjs") else "python"
    )
    limits = {k: v for k, v in (("wall_s", args.wall), ("memory_mb", args.memory)) if v}
    settings = _settings(args, limits)
    module = files["solution"].stem if language == "python" else "solution"
    outcome = asyncio.run(
        run_tests(
            files["solution"].read_text(encoding="utf-8"),
            files["tests"].read_text(encoding="utf-8"),
            language=language,
            settings=settings,
            module=module,
        )
    )
    if args.json:
        print(json.dumps(outcome.as_dict(), indent=2))
    else:
        total = len(outcome.tests)
        head = "PASSED" if outcome.ok else f"FAILED {outcome.reason}"
        print(f"{head}: {outcome.passed}/{total} tests passed ({outcome.wall_ms:.1f} ms)"
              + ("" if outcome.ok else f" - {outcome.detail}"))  # fmt: skip
        if not outcome.ok:
            for t in outcome.tests:
                if t.status != "passed" and t.error:
                    print(f"  {t.name}: {t.error}")
    return 0 if outcome.ok else 1
