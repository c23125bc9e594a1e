"""The code pipeline (Llama 3 style): problems, solutions, unit tests, a sandboxed run and
a fix loop.

- `code_problems` (source): a problem per index from a seed topic, one of its concepts and
  a difficulty, drawn with the record's own RNG; near-duplicate problems are skipped.
- `code_solutions`: a solution to each problem, in the record's language.
- `code_tests`: unit tests written from the problem statement (not from the solution).
- `code_run`: runs the tests in the sandbox; on failure feeds the verdict back to the model
  and asks for a corrected solution, up to `fix_rounds` times. The record keeps the last
  solution, its per-test results and how many fix rounds it took. Failing records flow on:
  the `unit_tests` verifier rejects them with the sandbox's reason, so rejects.jsonl says
  why (tests_failed, timeout, memory, ...).

A model call that finally fails (retries spent) leaves the record flowing on with
`meta["error"]`; later steps pass it through untouched and the chain rejects it with the
failing step's reason (`code_solutions_llm_response_error`, ...)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from synth.content import building_base_dir, load_yaml, resolve
from synth.context import Context, rng_for
from synth.llm.calls import RECORD_FAILURES, failed, step_failure
from synth.llm.prompts import check_prompts
from synth.records import Record, record_id
from synth.registry import step
from synth.steps._code import (
    SAMPLING_SCHEMA,
    SANDBOX_SCHEMA,
    Runner,
    ask,
    extract_code,
    fix_until_pass,
    language_of,
)
from synth.steps._code import results as run_results
from synth.streams import flat_ordered_map, ordered_map

DEFAULT_DIFFICULTIES = ["easy", "medium", "hard"]
_LABEL = r"(?:^|\n)\s*[*_#]*\s*{}\s*[*_]*\s*:\s*[*_]*\s*"
_FUNC = re.compile(
    _LABEL.format("function") + r"`*\s*(?:def\s+)?([A-Za-z_]\w*)\s*(\([^\n]*)?", re.IGNORECASE
)
_DEF = re.compile(r"\bdef\s+([A-Za-z_]\w*)\s*\(([^)]*)\)")
_TITLE = re.compile(_LABEL.format("title") + r"(.+)", re.IGNORECASE)
_PROBLEM = re.compile(_LABEL.format("problem"), re.IGNORECASE)


def load_topics(ref: str | list[Any], ctx: Context) -> tuple[list[dict[str, Any]], list[str]]:
    """Topics as [{topic, concepts}] and the file's difficulties, from a template name
    (`templates/code-topics.yaml`) or an inline list (strings or {topic, concepts})."""
    diffs: list[str] = []
    if isinstance(ref, str):
        data = load_yaml(resolve("templates", ref, ctx.base_dir)) or {}
        raw, diffs = data.get("topics", []), list(data.get("difficulties", []))
    else:
        raw = ref
    topics = []
    for item in raw:
        if isinstance(item, str):
            topics.append({"topic": item, "concepts": [item]})
        else:
            topics.append({"topic": item["topic"], "concepts": list(item.get("concepts") or [])})
    return topics, diffs


def parse_problem(text: str) -> dict[str, str]:
    """title, entry_point, signature and statement from a model's problem text. A missing
    function name becomes `solve`, which the solution and test prompts then both use."""
    t = _TITLE.search(text)
    title = t.group(1).strip().strip("*#` ") if t else ""
    m = _FUNC.search(text)
    if m:
        name, args = m.group(1), (m.group(2) or "()").strip().rstrip("`*").strip()
    else:
        d = _DEF.search(text)
        name, args = (d.group(1), f"({d.group(2)})") if d else ("solve", "(...)")
    p = _PROBLEM.search(text)
    statement = text[p.end() :].strip() if p else text.strip()
    return {
        "title": title[:120],
        "entry_point": name,
        "signature": f"{name}{args if args.startswith('(') else '(' + args + ')'}",
        "problem": statement,
    }


def _shingles(text: str, n: int = 3) -> set[str]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


@step(
    "code_problems",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **SAMPLING_SCHEMA,
            "topics": {
                "description": "a template name (templates/<name>.yaml) or a list of topics",
                "oneOf": [{"type": "string"}, {"type": "array", "minItems": 1}],
            },
            "difficulties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "language": {"type": "string"},
            "template": {"type": "string"},
            "max_similarity": {"type": "number", "minimum": 0, "maximum": 1},
            "max_duplicate_run": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": False,
    },
)
def code_problems(
    *,
    topics: str | list[Any] = "code-topics",
    difficulties: list[str] | None = None,
    language: str = "python",
    template: str = "code-problem",
    model: str | None = None,
    temperature: float = 1.0,
    max_tokens: int = 320,
    max_similarity: float = 0.7,
    max_duplicate_run: int = 50,
    concurrency: int = 8,
) -> Any:
    """Source of programming problems from seed topics x concepts x difficulties (deduplicated)."""
    lang = language_of(language)
    base = building_base_dir()
    if isinstance(topics, str) and base is not None:
        resolve("templates", topics, base)  # a wrong name fails at load, not mid-run
    check_prompts(template)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        pool, file_diffs = load_topics(topics, ctx)
        diffs = difficulties or file_diffs or DEFAULT_DIFFICULTIES

        async def indices() -> AsyncIterator[int]:
            i = ctx.start_index
            while True:
                yield i
                i += 1

        async def make(i: int) -> list[Record]:
            rng = rng_for(ctx.seed, "code_problems", i)
            seed = rng.choice(pool)
            concept = rng.choice(seed["concepts"] or [seed["topic"]])
            difficulty = rng.choice(diffs)
            variables = {
                "topic": seed["topic"], "concept": concept, "difficulty": difficulty,
                "language": lang,
            }  # fmt: skip
            try:
                text, call = await ask(
                    ctx, template, variables, model=model, temperature=temperature,
                    max_tokens=max_tokens, n_index=i,
                )  # fmt: skip
            except RECORD_FAILURES as exc:
                data = {"topic": seed["topic"], "concept": concept, "difficulty": difficulty,
                        "language": lang}  # fmt: skip
                meta = {"index": i, "generator": "code_problems",
                        "error": step_failure(ctx, "code_problems", exc)}  # fmt: skip
                return [Record(record_id(ctx.recipe_hash, ctx.seed, i), data, meta)]
            parsed = parse_problem(text)
            data = {**parsed, "topic": seed["topic"], "concept": concept,
                    "difficulty": difficulty, "language": lang}  # fmt: skip
            meta = {"index": i, "generator": "code_problems", "llm_calls": [call]}
            return [Record(record_id(ctx.recipe_hash, ctx.seed, i), data, meta)]

        seen: list[set[str]] = []
        run_of_duplicates = 0
        # Dedup runs here, on results in index order, so it is deterministic.
        async for r in flat_ordered_map(indices(), make, concurrency):
            if failed(r):  # no problem to compare: on to the chain, which rejects it
                yield r
                continue
            sh = _shingles(r.data["problem"] + " " + r.data["entry_point"])
            if not r.data["problem"].strip() or any(
                len(sh & s) / max(1, len(sh | s)) > max_similarity for s in seen
            ):
                ctx.stats["code_problems_duplicate"] += 1
                run_of_duplicates += 1
                if run_of_duplicates >= max_duplicate_run:
                    ctx.stats["code_problems_exhausted"] += 1
                    return  # the model keeps repeating itself: stop rather than spin
                continue
            run_of_duplicates = 0
            seen.append(sh)
            yield r

    return run


def _derive_step(name: str, template: str, field: str, doc: str, **defaults: Any) -> None:
    """Register a step that fills `field` with code the model writes from the problem."""

    def factory(
        *,
        template: str = template,
        model: str | None = None,
        temperature: float = defaults["temperature"],
        max_tokens: int = defaults["max_tokens"],
        concurrency: int = 8,
    ) -> Any:
        check_prompts(template)

        async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
            async def one(r: Record) -> list[Record]:
                if failed(r):
                    return [r]
                lang = language_of(r.data.get("language"))
                variables = {
                    "problem": r.data.get("problem", ""),
                    "entry_point": r.data.get("entry_point", "solve"),
                    "signature": r.data.get("signature", "solve(...)"),
                    "language": lang,
                }
                try:
                    text, call = await ask(
                        ctx, template, variables, model=model, temperature=temperature,
                        max_tokens=max_tokens,
                    )  # fmt: skip
                except RECORD_FAILURES as exc:
                    return [r.evolve(error=step_failure(ctx, name, exc))]
                data = {**r.data, field: extract_code(text, lang)}
                calls = [*r.meta.get("llm_calls", []), call]
                return [r.evolve(data=data, llm_calls=calls)]

            async for out in flat_ordered_map(records, one, concurrency):
                yield out

        return run

    factory.__doc__ = doc
    factory.__name__ = name
    schema = {
        "type": "object",
        "properties": {**SAMPLING_SCHEMA, "template": {"type": "string"}},
        "additionalProperties": False,
    }
    step(name, llm=True, schema=schema)(factory)  # after __doc__: `synth list` shows it


_derive_step(
    "code_solutions", "code-solution", "solution",
    "Write a solution to each record's problem (data.solution).",
    temperature=0.2, max_tokens=512,
)  # fmt: skip
_derive_step(
    "code_tests", "code-tests", "tests",
    "Write unit tests from each record's problem statement (data.tests).",
    temperature=0.2, max_tokens=640,
)  # fmt: skip


@step(
    "code_run",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **SAMPLING_SCHEMA,
            "fix_rounds": {"type": "integer", "minimum": 0, "maximum": 10},
            "template": {"type": "string"},
            "sandbox": SANDBOX_SCHEMA,
        },
        "additionalProperties": False,
    },
)
def code_run(
    *,
    fix_rounds: int = 2,
    template: str = "code-fix",
    model: str | None = None,
    temperature: float = 0.2,
    max_tokens: int = 640,
    sandbox: dict[str, Any] | None = None,
    concurrency: int = 8,
) -> Any:
    """Run each record's tests in the sandbox; on failure ask for a fix, up to fix_rounds times."""
    check_prompts(template)
    runner = Runner(sandbox)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async def one(r: Record) -> Record:
            if failed(r):
                return r
            lang = language_of(r.data.get("language"))
            solution, tests = str(r.data.get("solution", "")), str(r.data.get("tests", ""))
            fixed = await fix_until_pass(
                ctx, runner, step="code_run", problem=r.data, solution=solution, tests=tests,
                language=lang, template=template, rounds=fix_rounds, model=model,
                temperature=temperature, max_tokens=max_tokens,
            )  # fmt: skip
            if fixed.outcome.ok and fixed.rounds:
                ctx.stats["code_run_fixed"] += 1
            data = {
                **r.data,
                "solution": fixed.solution,
                "fix_rounds": fixed.rounds,
                **run_results(fixed.outcome),
            }
            extra = {"error": fixed.error} if fixed.error else {}
            calls = [*r.meta.get("llm_calls", []), *fixed.calls]
            return r.evolve(
                data=data, llm_calls=calls, code_run={"attempts": fixed.attempts}, **extra
            )

        async for out in ordered_map(records, one, concurrency):
            yield out

    return run
