"""Shared parts of the code-pipeline steps: languages, pulling code out of a model's
answer, one model call with lineage, one sandboxed test run recorded on the record, and
the fix loop (run, show the model the failures, run its fix) that code_run and
code_translate share."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synth.context import Context
from synth.llm.calls import RECORD_FAILURES, complete, step_failure
from synth.llm.prompts import load_prompt

LANGUAGE_ALIASES = {
    "python": "python", "py": "python", "python3": "python",
    "javascript": "javascript", "js": "javascript", "node": "javascript", "nodejs": "javascript",
}  # fmt: skip
FENCE_TAGS = {"python": ("python", "py", "python3"), "javascript": ("javascript", "js", "node")}

# Step config shared by every step that runs code: where the sandbox settings come from.
SANDBOX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "sandbox overrides (backend, workers, disk_mb, limits) over "
    "verifiers/sandbox.yaml",
}
SAMPLING_SCHEMA: dict[str, Any] = {
    "model": {"type": "string"},
    "temperature": {"type": "number", "minimum": 0},
    "max_tokens": {"type": "integer", "minimum": 1},
    "concurrency": {"type": "integer", "minimum": 1},
}

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def language_of(name: Any) -> str:
    lang = LANGUAGE_ALIASES.get(str(name or "python").strip().lower())
    if lang is None:
        raise ValueError(f"unsupported language {name!r} (supported: python, javascript)")
    return lang


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Fenced blocks as (tag, code); an unterminated last fence still counts (models stop
    at max_tokens mid-block)."""
    return [(m.group(1).lower(), m.group(2).strip("\n")) for m in _FENCE.finditer(text or "")]


def extract_code(text: str, language: str) -> str:
    """The code in a model answer: the first fenced block in `language` (or the first
    block of any kind), else the whole answer without prose lines around it."""
    blocks = code_blocks(text)
    for tag, code in blocks:
        if tag in FENCE_TAGS.get(language, ()):
            return code.strip() + "\n"
    if blocks:
        return blocks[0][1].strip() + "\n"
    return (text or "").strip() + "\n"


def extract_pair(text: str, language: str) -> tuple[str, str]:
    """(solution, tests) from an answer that should hold two fenced blocks. One block is
    split where the tests start (the import of the solution, or the first test)."""
    blocks = [c for t, c in code_blocks(text) if not t or t in FENCE_TAGS.get(language, ())]
    if len(blocks) >= 2:
        return blocks[0].strip() + "\n", blocks[1].strip() + "\n"
    code = blocks[0] if blocks else (text or "")
    marker = re.search(
        r"^.*(require\(['\"]\./solution['\"]\)|from solution import|^test\(|^def test_)",
        code,
        re.MULTILINE,
    )
    if marker:
        return code[: marker.start()].strip() + "\n", code[marker.start() :].strip() + "\n"
    return code.strip() + "\n", ""


async def ask(
    ctx: Context, template: str, variables: dict[str, Any], **params: Any
) -> tuple[str, dict[str, Any]]:
    """One model call with a prompt template; returns (text, lineage entry)."""
    prompt = load_prompt(template, ctx.base_dir)
    params = {k: v for k, v in params.items() if v is not None}
    c = await complete(ctx, prompt.render(**variables), prompt=prompt, **params)
    call = {"template": template, **c.lineage()}
    return str(c.text), call


class Runner:
    """Runs a solution against tests with the sandbox settings of one step (resolved
    once, from verifiers/sandbox.yaml plus the step's `sandbox:` overrides)."""

    def __init__(self, overrides: dict[str, Any] | None) -> None:
        self.overrides = dict(overrides or {})
        self.settings: Any = None

    async def run(self, ctx: Context, solution: str, tests: str, language: str) -> Any:
        from synth.sandbox import run_tests, settings_for

        if self.settings is None:
            self.settings = settings_for(self.overrides, ctx.base_dir)
        outcome = await run_tests(solution, tests, language=language, settings=self.settings)
        ctx.stats[f"code_runs_{outcome.reason}"] += 1
        return outcome


def results(outcome: Any) -> dict[str, Any]:
    """What a code record carries about its last run (data fields, JSON)."""
    return {
        "passed": bool(outcome.ok),
        "verdict": outcome.reason,
        "test_results": [
            {"name": t.name, "status": t.status, **({"error": t.error[:500]} if t.error else {})}
            for t in outcome.tests
        ],
    }


def prose_only(text: str) -> str:
    """An explanation without code in it: fenced blocks and code-looking lines removed,
    so regenerating the code from it tests the explanation, not a pasted copy."""
    text = _FENCE.sub(" ", text or "")
    keep = []
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"^(def |class |return |import |from \S+ import|function |const |let |"
                    r"var |for \(|if \(|\}|\{)", s) or line.startswith("    "):  # fmt: skip
            continue
        keep.append(line)
    return "\n".join(keep).strip()


@dataclass(slots=True)
class Fixed:
    """Where a fix loop ended: the last solution and its run, the fix rounds it took,
    the calls it made, one entry per run, and the step failure if a fix call failed."""

    solution: str
    outcome: Any
    rounds: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] = field(default_factory=dict)


async def fix_until_pass(
    ctx: Context,
    runner: Runner,
    *,
    step: str,
    problem: Mapping[str, Any],
    solution: str,
    tests: str,
    language: str,
    template: str,
    rounds: int,
    **sampling: Any,
) -> Fixed:
    """Run `solution` against `tests`; while it fails in a way a new solution can fix,
    show the model the failures (`template`) and run its answer, up to `rounds` times.
    A failed fix call ends the loop with the last solution (`error` says why)."""
    fixed = Fixed(solution, await runner.run(ctx, solution, tests, language))
    while not fixed.outcome.ok and fixed.rounds < rounds and fixable(fixed.outcome):
        fixed.attempts.append(_attempt(fixed.rounds, fixed.outcome))
        variables = {
            "problem": problem.get("problem", ""),
            "signature": problem.get("signature", ""),
            "entry_point": problem.get("entry_point", "solve"),
            "language": language,
            "solution": fixed.solution,
            "tests": tests,
            "feedback": fixed.outcome.feedback(),
        }
        try:
            text, call = await ask(ctx, template, variables, n_index=fixed.rounds, **sampling)
        except RECORD_FAILURES as exc:  # the fix rounds it was due never happened
            fixed.error = step_failure(ctx, f"{step}_fix", exc)
            break
        fixed.calls.append(call)
        fixed.rounds += 1
        fixed.solution = extract_code(text, language)
        fixed.outcome = await runner.run(ctx, fixed.solution, tests, language)
    fixed.attempts.append(_attempt(fixed.rounds, fixed.outcome))
    return fixed


def fixable(outcome: Any) -> bool:
    """A new solution cannot fix tests that do not exist or do not parse, or a sandbox
    that failed or an answer too large to run."""
    if outcome.reason in ("no_tests", "tests_redefine_solution", "sandbox_error", "too_large"):
        return False
    return not (outcome.reason == "syntax_error" and outcome.detail.startswith("tests"))


def _attempt(rounds: int, outcome: Any) -> dict[str, Any]:
    return {
        "round": rounds,
        "verdict": outcome.reason,
        "passed": outcome.passed,
        "total": len(outcome.tests),
    }
