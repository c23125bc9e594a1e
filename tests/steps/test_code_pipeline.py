"""The code pipeline: problems -> solutions -> tests -> sandboxed run with a fix loop ->
explanation checked by back-translation -> translation to JavaScript; with a scripted
model step by step, through the engine (`synth.run`) against a loopback stub model, and
once on the real local model when it is installed."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from code_fake import PROBLEMS, answer, stub_answer
from sandbox_kit import SETTINGS, needs_node, needs_root
from text_fixtures import ROOT, local_model_missing, make_ctx

import synth
from synth.chain import Chain, Named
from synth.content import load_yaml
from synth.errors import LLMResponseError
from synth.records import Record, read_jsonl
from synth.registry import lookup
from synth.runner.recipe import from_dict
from synth.steps._code import extract_code, extract_pair, prose_only
from synth.steps.code import parse_problem
from synth.streams import aiter_of
from synth.testing import ScriptedLLM

SANDBOX = {"workers": SETTINGS.workers, "disk_mb": SETTINGS.disk_mb}
TOPICS = [{"topic": "strings", "concepts": [f"concept number {i}" for i in range(12)]}]


def make(kind: str, name: str, **config: Any) -> Any:
    return lookup(kind, name).factory(**config)


def pipeline(steps: list[Any], ctx: Any, n: int, records: list[Record] = ()) -> list[Record]:  # type: ignore[assignment]
    async def go() -> list[Record]:
        gen: AsyncIterator[Record] = steps[0](aiter_of(list(records)), ctx)
        for s in steps[1:]:
            gen = s(gen, ctx)
        out = []
        async for r in gen:
            out.append(r)
            if len(out) >= n:
                break
        await gen.aclose()  # type: ignore[attr-defined]
        return out

    return asyncio.run(go())


def gate(verifiers: list[tuple[str, Any]], records: list[Record], ctx: Any) -> list[Any]:
    chain = Chain([Named(n, v) for n, v in verifiers])

    async def go() -> list[Any]:
        return [await chain.check(r, ctx) for r in records]

    return asyncio.run(go())


def test_problem_text_is_parsed_leniently() -> None:
    p = parse_problem("**Title:** Sum\n**Function:** `total(xs: list[int]) -> int`\nProblem: Add.")
    assert (p["title"], p["entry_point"], p["problem"]) == ("Sum", "total", "Add.")
    assert p["signature"] == "total(xs: list[int]) -> int"
    assert parse_problem("Write def area(w, h): the area.")["entry_point"] == "area"
    assert parse_problem("no structure at all")["entry_point"] == "solve"


def test_code_is_extracted_from_chatty_answers() -> None:
    assert extract_code("Sure!\n```python\nx = 1\n```\nDone.", "python") == "x = 1\n"
    assert extract_code("```js\nlet a;\n```\n```python\nb = 2\n```", "python") == "b = 2\n"
    assert extract_code("```python\ncut off by max_tokens", "python") == "cut off by max_tokens\n"
    sol, tests = extract_pair(
        "```javascript\nfunction f() {}\nmodule.exports = { f };\nconst { f } = "
        "require('./solution');\ntest('t', () => {});\n```",
        "javascript",
    )
    assert sol.startswith("function f") and tests.startswith("const { f } = require")
    assert "def " not in prose_only("It loops.\n```python\ndef f(): pass\n```\n    return x\nDone.")


@needs_root
def test_scripted_pipeline_fix_loop_explanations_and_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    llm = ScriptedLLM(answer)
    ctx = make_ctx(llm)
    steps = [
        make("step", "code_problems", topics=TOPICS, max_duplicate_run=12),
        make("step", "code_solutions"),
        make("step", "code_tests"),
        make("step", "code_run", fix_rounds=2, sandbox=SANDBOX),
        make("step", "code_explain", sandbox=SANDBOX),
    ]
    records = pipeline(steps, ctx, 10)
    by_name = {r.data["entry_point"]: r for r in records}
    assert sorted(by_name) == sorted(PROBLEMS)  # three unique problems, duplicates skipped
    assert ctx.stats["code_problems_duplicate"] >= 12 and ctx.stats["code_problems_exhausted"] == 1
    for r in records:
        d = r.data
        assert {"problem", "solution", "tests", "language", "test_results", "fix_rounds"} <= set(d)
        assert d["passed"] and d["language"] == "python"
        assert [t["status"] for t in d["test_results"]] == ["passed"] * 3
        assert r.meta["index"] >= 0 and r.meta["generator"] == "code_problems"
    fixed = by_name["count_vowels"]
    assert (
        fixed.data["fix_rounds"] == 1
        and fixed.data["solution"] == PROBLEMS["count_vowels"]["solution"]
    )
    assert [a["verdict"] for a in fixed.meta["code_run"]["attempts"]] == ["tests_failed", "passed"]
    assert len(fixed.meta["llm_calls"]) == 6  # problem, solution, tests, one fix, explain, back
    fix_prompt = next(c for c in llm.calls if c.messages[0]["content"].startswith("You fix"))
    feedback = fix_prompt.messages[-1]["content"]
    assert "assert 0 == 5" in feedback and "key: none" in feedback  # the job saw no key
    assert secret not in json.dumps([r.to_json() for r in records])
    assert by_name["reverse_words"].data["backtranslation"]["passed"] is False
    assert by_name["running_max"].data["backtranslation"]["passed"] is True

    verdicts = gate(
        [
            ("unit_tests", make("verifier", "unit_tests", min_tests=3, **SANDBOX)),
            (
                "explained",
                make(
                    "verifier",
                    "unit_tests",
                    solution="backtranslation.solution",
                    reason_prefix="explanation_",
                    **SANDBOX,
                ),
            ),  # fmt: skip
        ],
        records,
        ctx,
    )
    reasons = {r.data["entry_point"]: v.reason for r, v in verdicts}
    assert reasons == {"count_vowels": "", "running_max": "", "reverse_words":
                       "explanation_tests_failed"}  # fmt: skip


@needs_root
@needs_node
def test_translations_are_kept_only_when_their_tests_pass() -> None:
    llm = ScriptedLLM(answer)
    ctx = make_ctx(llm)
    translate = make("step", "code_translate", languages=["javascript"], fix_rounds=1,
                     sandbox=SANDBOX)  # fmt: skip
    out = pipeline([translate], ctx, 10, sources())
    by_name = {r.data["entry_point"]: r for r in out}
    assert all(r.data["language"] == "javascript" for r in out)
    assert (
        by_name["count_vowels"].data["fix_rounds"] == 1 and by_name["count_vowels"].data["passed"]
    )
    assert by_name["count_vowels"].meta["parents"] == ["src1"]
    assert (
        by_name["count_vowels"].meta["originals"]["solution"]
        == PROBLEMS["count_vowels"]["solution"]
    )
    verdicts = gate(
        [
            (
                "unit_tests",
                make("verifier", "unit_tests", min_tests_from="source_test_count", **SANDBOX),
            )
        ],  # fmt: skip
        out,
        ctx,
    )
    reasons = {r.data["entry_point"]: v.reason for r, v in verdicts}
    assert reasons == {"reverse_words": "", "count_vowels": "", "running_max": "too_few_tests"}


def failing(system_prefix: str, exc: Exception) -> Any:
    """The code fake, except that every call whose system prompt starts with
    `system_prefix` finally fails with `exc` (retries spent, or JSON never valid)."""

    def script(messages: list[dict[str, Any]], **params: Any) -> Any:
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        return exc if system.startswith(system_prefix) else answer(messages, **params)

    return script


def sources() -> list[Record]:
    return [
        Record(
            f"src{i}",
            {
                "problem": PROBLEMS[n]["problem"],
                "entry_point": n,
                "solution": PROBLEMS[n]["solution"],
                "tests": PROBLEMS[n]["tests"],
                "language": "python",
            },
            {"index": i},
        )  # fmt: skip
        for i, n in enumerate(PROBLEMS)
    ]


STAGES = ["You write programming", "You write correct", "You write unit tests"]


@pytest.mark.parametrize(
    ("stage", "exc", "reason"),
    [
        (0, LLMResponseError("not a problem"), "code_problems_llm_response_error"),
        (1, LLMResponseError("garbled"), "code_solutions_llm_response_error"),
        (2, LLMResponseError("no tests in it"), "code_tests_llm_response_error"),
    ],
)
def test_a_failed_call_is_rejected_with_its_reason_and_later_steps_skip_the_record(
    stage: int, exc: Exception, reason: str
) -> None:
    llm = ScriptedLLM(failing(STAGES[stage], exc))
    ctx = make_ctx(llm)
    steps = [
        make("step", "code_problems", topics=TOPICS),
        make("step", "code_solutions"),
        make("step", "code_tests"),
        make("step", "code_run", sandbox=SANDBOX),  # never runs: no record reaches it whole
        make("step", "code_explain", sandbox=SANDBOX),
    ]
    records = pipeline(steps, ctx, 3)
    assert len({r.id for r in records}) == 3  # none dropped
    systems = [c.messages[0]["content"] for c in llm.calls]
    asked = {i for i, prefix in enumerate(STAGES) if any(t.startswith(prefix) for t in systems)}
    assert asked == set(range(stage + 1))  # nothing after the failed call
    assert all(any(t.startswith(prefix) for prefix in STAGES) for t in systems)
    assert not any(k.startswith("code_runs_") for k in ctx.stats)
    verdicts = gate([], records, ctx)
    assert [v.reason for _, v in verdicts] == [reason] * 3
    assert all(r.meta["verdicts"][-1]["detail"].startswith(type(exc).__name__) for r, _ in verdicts)
    assert ctx.stats[f"rejected_{reason}"] == 3


@needs_root
@needs_node
def test_failed_fix_translation_and_explanation_calls_are_rejected_with_their_reason() -> None:
    unavailable = LLMResponseError("HTTP 200 but unusable")
    fix = ScriptedLLM(failing("You fix", unavailable))
    ctx = make_ctx(fix)
    broken = [r.evolve(data={**r.data, "solution": "def nothing():\n    pass\n"})
              for r in sources()]  # fmt: skip
    ran = pipeline([make("step", "code_run", fix_rounds=2, sandbox=SANDBOX)], ctx, 3, broken)
    assert [r.meta["error"]["reason"] for r in ran] == ["code_run_fix_llm_response_error"] * 3
    assert all(r.data["fix_rounds"] == 0 and not r.data["passed"] for r in ran)
    assert "unusable" in ran[0].meta["error"]["detail"]

    translate = ScriptedLLM(failing("You translate", unavailable))
    ctx = make_ctx(translate)
    step = make("step", "code_translate", languages=["javascript"], sandbox=SANDBOX)
    out = pipeline([step], ctx, 10, sources())
    assert [r.meta["parents"] for r in out] == [["src0"], ["src1"], ["src2"]]
    assert {r.meta["error"]["reason"] for r in out} == {"code_translate_llm_response_error"}
    assert all(r.data["language"] == "javascript" for r in out)

    explain = ScriptedLLM(failing("You write python code from a description", unavailable))
    ctx = make_ctx(explain)
    passing = [r.evolve(data={**r.data, "passed": True}) for r in sources()]
    out = pipeline([make("step", "code_explain", sandbox=SANDBOX)], ctx, 3, passing)
    assert {r.meta["error"]["reason"] for r in out} == {"code_explain_llm_response_error"}
    assert all(len(r.meta["llm_calls"]) == 1 for r in out)  # the explanation's call is kept
    assert all("backtranslation" not in r.data for r in out)


@needs_root
@needs_node
@pytest.mark.slow  # importing litellm for the real client takes seconds
def test_recipes_run_end_to_end_through_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from synth.testing import StubServer

    secret = "sk-test-" + uuid.uuid4().hex
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    raw = load_yaml(ROOT / "recipes" / "code-python.yaml")
    raw["model"] = "openai/stub"
    raw["steps"][0]["max_duplicate_run"] = 12
    raw_tr = load_yaml(ROOT / "recipes" / "code-translate.yaml")
    raw_tr["model"] = "openai/stub"

    async def main() -> tuple[Any, Any]:
        async with StubServer(answer=stub_answer) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            py = await synth.run(from_dict(raw, base_dir=ROOT), n=2, out=tmp_path / "py")
            tr_recipe = from_dict(raw_tr, base_dir=ROOT, settings={
                "languages": ["javascript"], "input": str(py.data_path)})  # fmt: skip
            js = await synth.run(tr_recipe, n=2, out=tmp_path / "js")
            return py, js

    py, js = asyncio.run(main())
    assert py.kept == 2
    kept = {r.data["entry_point"]: r for r in read_jsonl(py.data_path)}
    assert set(kept) <= {"count_vowels", "running_max"}
    rejects = [json.loads(line) for line in py.rejects_path.read_text().splitlines()]
    assert {r["meta"]["reject_reason"] for r in rejects} <= {"explanation_tests_failed"}
    assert js.kept == 1
    [translated] = list(read_jsonl(js.data_path))
    assert translated.data["language"] == "javascript" and translated.data["passed"]
    js_rejects = [json.loads(line) for line in js.rejects_path.read_text().splitlines()]
    assert all(r["meta"]["reject_reason"] in ("too_few_tests",) for r in js_rejects)
    for path in [*tmp_path.glob("py/*"), *tmp_path.glob("js/*")]:
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path


@needs_root
@pytest.mark.local_model
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_local_model_runs_the_code_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = local_model_missing()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    raw = load_yaml(ROOT / "recipes" / "code-python.yaml")
    # The shipped recipe, trimmed to what a 135M model on 2 shared cores does in minutes:
    # short answers, no fix loop, no explanation step, one record.
    raw["concurrency"] = 1
    raw["steps"] = [
        {**raw["steps"][0], "max_tokens": 96},
        {"use": "code_solutions", "max_tokens": 160},
        {"use": "code_tests", "max_tokens": 200},
        {"use": "code_run", "fix_rounds": 0},
    ]
    raw["verify"] = raw["verify"][:1]
    recipe = from_dict(raw, base_dir=ROOT)
    result = asyncio.run(
        synth.run(recipe, n=1, out=tmp_path / "out", max_attempts=1, max_seconds=900)
    )
    assert result.generated >= 1  # a tiny model rarely passes: it must run and say why
    rejects = [json.loads(line) for line in result.rejects_path.read_text().splitlines()]
    assert result.kept + len(rejects) == result.generated
    for r in rejects:
        verdict = r["meta"]["verdicts"][-1]
        assert r["meta"]["reject_reason"] and verdict["verifier"] and verdict["reason"]
        assert "test_results" in r["data"] and "solution" in r["data"]
