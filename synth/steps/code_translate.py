"""Code records into more data: translations to other languages, and explanations checked
by back-translation.

- `code_translate`: for each passing record and each target language, the model
  translates solution *and* tests; the translation runs in the sandbox (Node for
  JavaScript: the interpreter is untrusted input too, so it runs jailed the same way), with
  up to `fix_rounds` fixes. One child record per language; the `unit_tests` verifier keeps
  only those whose tests pass (`min_tests_from: source_test_count` also rejects a
  translation that quietly dropped tests).
- `code_explain`: the model explains the code in prose; then, from that explanation alone
  (code stripped out of it), it writes the code again, and the *original* tests run on the
  regenerated code. An explanation that lets someone rebuild working code is a faithful
  one; gate it with `unit_tests` on `backtranslation.solution`.

A model call that finally fails (retries spent) makes a record with `meta["error"]` that
the chain rejects with the step's reason (`code_translate_llm_response_error`, ...); a record
an earlier step failed passes through both steps untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from synth.context import Context
from synth.llm.calls import RECORD_FAILURES, clean_text, failed, step_failure
from synth.llm.prompts import check_prompts
from synth.records import Record, child_id
from synth.registry import step
from synth.steps._code import (
    SAMPLING_SCHEMA,
    SANDBOX_SCHEMA,
    Runner,
    ask,
    extract_code,
    extract_pair,
    fix_until_pass,
    language_of,
    prose_only,
    results,
)
from synth.streams import flat_ordered_map, ordered_map


@step(
    "code_translate",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **SAMPLING_SCHEMA,
            "languages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "template": {"type": "string"},
            "fix_template": {"type": "string"},
            "fix_rounds": {"type": "integer", "minimum": 0, "maximum": 10},
            "keep_source": {"type": "boolean"},
            "verify_source": {"type": "boolean"},
            "sandbox": SANDBOX_SCHEMA,
        },
        "required": ["languages"],
        "additionalProperties": False,
    },
)
def code_translate(
    *,
    languages: list[str],
    template: str = "code-translate",
    fix_template: str = "code-fix",
    fix_rounds: int = 1,
    keep_source: bool = False,
    verify_source: bool = True,
    model: str | None = None,
    temperature: float = 0.2,
    max_tokens: int = 900,
    sandbox: dict[str, Any] | None = None,
    concurrency: int = 4,
) -> Any:
    """Translate passing solutions and their tests to other languages, run them there."""
    check_prompts(template, fix_template)
    targets = [language_of(x) for x in languages]
    runner = Runner(sandbox)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async def translate(parent: Record, k: int, target: str) -> Record:
            src_lang = language_of(parent.data.get("language"))
            variables = {
                "source_language": src_lang,
                "target_language": target,
                "entry_point": parent.data.get("entry_point", "solve"),
                "problem": parent.data.get("problem", ""),
                "solution": parent.data["solution"],
                "tests": parent.data["tests"],
            }
            calls: list[dict[str, Any]] = []
            kid = child_id(parent, f"translate-{target}", k)
            try:
                text, call = await ask(
                    ctx, template, variables, model=model, temperature=temperature,
                    max_tokens=max_tokens, n_index=k,
                )  # fmt: skip
            except RECORD_FAILURES as exc:
                data = {**{f: v for f, v in parent.data.items() if f not in _PER_LANGUAGE},
                        "language": target, "source_language": src_lang}  # fmt: skip
                error = step_failure(ctx, "code_translate", exc)
                meta = {**parent.meta, "parents": [parent.id], "error": error,
                        "translation": {"from": src_lang, "to": target}}  # fmt: skip
                return Record(kid, data, meta)
            calls.append(call)
            solution, tests = extract_pair(text, target)
            fixed = await fix_until_pass(
                ctx, runner, step="code_translate", problem=parent.data, solution=solution,
                tests=tests, language=target, template=fix_template, rounds=fix_rounds,
                model=model, temperature=temperature, max_tokens=max_tokens,
            )  # fmt: skip
            calls += fixed.calls
            solution, outcome, rounds, error = (
                fixed.solution, fixed.outcome, fixed.rounds, fixed.error
            )  # fmt: skip
            ctx.stats[f"code_translate_{'passed' if outcome.ok else 'failed'}"] += 1
            source_tests = parent.data.get("test_results") or []
            data = {
                **{k: v for k, v in parent.data.items() if k not in _PER_LANGUAGE},
                "language": target,
                "solution": solution,
                "tests": tests,
                "fix_rounds": rounds,
                "source_language": src_lang,
                "source_test_count": len(source_tests),
                **results(outcome),
            }
            meta = {
                **parent.meta,
                "parents": [parent.id],
                "llm_calls": [*parent.meta.get("llm_calls", []), *calls],
                "translation": {"from": src_lang, "to": target, "fix_rounds": rounds},
                "originals": {"solution": parent.data["solution"], "tests": parent.data["tests"]},
                **({"error": error} if error else {}),
            }
            return Record(kid, data, meta)

        async def children(parent: Record) -> list[Record]:
            if failed(parent):
                return [parent]
            if not parent.data.get("solution") or not parent.data.get("tests"):
                ctx.stats["code_translate_skipped_incomplete"] += 1
                return []
            src_lang = language_of(parent.data.get("language"))
            if verify_source:
                source = await runner.run(
                    ctx, parent.data["solution"], parent.data["tests"], src_lang
                )
                if not source.ok:
                    ctx.stats["code_translate_skipped_source_fails"] += 1
                    return [parent] if keep_source else []
                parent = parent.evolve(data={**parent.data, **results(source)})
            made = await asyncio.gather(
                *(translate(parent, k, t) for k, t in enumerate(targets) if t != src_lang)
            )
            return [parent, *made] if keep_source else list(made)

        async for r in flat_ordered_map(records, children, concurrency):
            yield r

    return run


# Fields that describe one language's code and its run; a translation replaces them.
_PER_LANGUAGE = {"solution", "tests", "test_results", "passed", "verdict", "fix_rounds",
                 "explanation", "backtranslation"}  # fmt: skip


@step(
    "code_explain",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **SAMPLING_SCHEMA,
            "template": {"type": "string"},
            "back_template": {"type": "string"},
            "only_passing": {"type": "boolean"},
            "sandbox": SANDBOX_SCHEMA,
        },
        "additionalProperties": False,
    },
)
def code_explain(
    *,
    template: str = "code-explain",
    back_template: str = "code-from-explanation",
    only_passing: bool = True,
    model: str | None = None,
    temperature: float = 0.3,
    max_tokens: int = 400,
    sandbox: dict[str, Any] | None = None,
    concurrency: int = 8,
) -> Any:
    """Explain each solution in prose, then verify it by regenerating the code from it."""
    check_prompts(template, back_template)
    runner = Runner(sandbox)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async def one(r: Record) -> Record:
            if failed(r) or (only_passing and not r.data.get("passed")):
                return r
            lang = language_of(r.data.get("language"))
            base = {
                "problem": r.data.get("problem", ""),
                "entry_point": r.data.get("entry_point", "solve"),
                "signature": r.data.get("signature", ""),
                "language": lang,
            }
            calls = list(r.meta.get("llm_calls", []))
            try:
                text, call = await ask(
                    ctx, template, {**base, "solution": r.data.get("solution", "")},
                    model=model, temperature=temperature, max_tokens=max_tokens,
                )  # fmt: skip
                calls.append(call)
                explanation = prose_only(clean_text(text))
                back, call = await ask(
                    ctx, back_template, {**base, "explanation": explanation},
                    model=model, temperature=0.0, max_tokens=max(max_tokens, 512),
                )  # fmt: skip
                calls.append(call)
            except RECORD_FAILURES as exc:
                return r.evolve(llm_calls=calls, error=step_failure(ctx, "code_explain", exc))
            regenerated = extract_code(back, lang)
            outcome = await runner.run(ctx, regenerated, str(r.data.get("tests", "")), lang)
            ctx.stats[f"code_explain_backtranslation_{'passed' if outcome.ok else 'failed'}"] += 1
            data = {
                **r.data,
                "explanation": explanation,
                "backtranslation": {"solution": regenerated, **results(outcome)},
            }
            return r.evolve(data=data, llm_calls=calls)

        async for out in ordered_map(records, one, concurrency):
            yield out

    return run
