"""`unit_tests`: keep a record only if its solution passes its tests in the sandbox.

The sandbox is the point: solution and tests are model output, so they run jailed (see
`synth/sandbox/`), and "passed" comes from the runner's structured report re-checked here,
never from an exit status. The verdict's reason is the sandbox's (`tests_failed`,
`timeout`, `memory`, `output_limit`, `crash`, `no_tests`, ...) and per-test results go
into lineage (`meta.verdicts[].info`)."""

from __future__ import annotations

from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.records import Record
from synth.registry import verifier
from synth.verifiers._fields import get_path

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "description": {"type": "string"},
        "solution": {"type": "string", "description": "path of the code (default solution)"},
        "tests": {"type": "string", "description": "path of the tests (default tests)"},
        "language": {
            "type": "string",
            "description": "a path holding the language, or a language name (default "
            "data.language, else python)",
        },
        "module": {"type": "string", "description": "module name tests import (solution)"},
        "reason_prefix": {"type": "string", "pattern": "^[a-z0-9_]*$"},
        "min_tests": {"type": "integer", "minimum": 1, "description": "fewer tests: rejected"},
        "min_tests_from": {
            "type": "string",
            "description": "a path holding the minimum (e.g. source_test_count: a translation "
            "must keep every test of its source)",
        },
        "backend": {"enum": ["bwrap", "unsafe-local"]},
        "workers": {"type": "integer", "minimum": 1, "maximum": 256},
        "disk_mb": {"type": "integer", "minimum": 1},
        "seccomp": {"type": "boolean"},
        "python": {"type": ["string", "null"]},
        "node": {"type": ["string", "null"]},
        "limits": {"type": "object"},
    },
    "additionalProperties": False,
}


@verifier("unit_tests", schema=SCHEMA)
def unit_tests(
    *,
    solution: str = "solution",
    tests: str = "tests",
    language: str = "language",
    module: str = "solution",
    reason_prefix: str = "",
    min_tests: int = 1,
    min_tests_from: str | None = None,
    description: str = "",
    **sandbox: Any,
) -> Verifier:
    """Run a record's solution against its unit tests in the sandbox; reject on any failure."""
    from synth.sandbox import LANGUAGES

    state: dict[str, Any] = {}

    async def check(record: Record, ctx: Context) -> Verdict:
        from synth.sandbox import run_tests, settings_for

        if "settings" not in state:
            state["settings"] = settings_for(sandbox, ctx.base_dir)
        code, test_src = get_path(record, solution), get_path(record, tests)
        lang = language if language in LANGUAGES else get_path(record, language) or "python"
        if not isinstance(code, str) or not code.strip():
            return Verdict(False, 0.0, f"{reason_prefix}no_solution", f"{solution} is empty")
        if not isinstance(test_src, str) or not test_src.strip():
            return Verdict(False, 0.0, f"{reason_prefix}no_tests", f"{tests} is empty")
        outcome = await run_tests(
            code, test_src, language=str(lang), settings=state["settings"], module=module
        )
        total = len(outcome.tests)
        score = outcome.passed / total if total else 0.0
        reason = "" if outcome.ok else f"{reason_prefix}{outcome.reason}"
        detail = outcome.detail[:500]
        floor = max(min_tests, _int(get_path(record, min_tests_from)) if min_tests_from else 0)
        if outcome.ok and total < floor:
            reason = f"{reason_prefix}too_few_tests"
            detail = f"{total} tests, at least {floor} required"
        info = {
            "language": outcome.language,
            "tests": [
                {
                    "name": t.name,
                    "status": t.status,
                    **({"error": t.error[:300]} if t.error else {}),
                }
                for t in outcome.tests
            ],
            "wall_ms": outcome.wall_ms,
        }
        return Verdict(not reason, round(score, 4), reason, detail, info)

    return check


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
