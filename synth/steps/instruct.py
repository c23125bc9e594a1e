"""Builders for instruction, preference and reward data.

- `instructions` (source): a Self-Instruct style instruction per index, drawn from
  `topics` x `kinds` with the record's own RNG, and (by default) a response to it.
- `respond`: adds a response to records that have an instruction.
- `preference`: two responses per prompt, judged pairwise in both orders; the record is
  (prompt, chosen, rejected) with the judgement in `meta.preference`, which the
  `pairwise` verifier reads (inconsistent pairs are rejected there, with their reason).
- `reward`: a rubric judge's score for (instruction, response), as the reward label.

Export with `synth export --format openai|sharegpt|alpaca|preference|reward`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from synth.context import Context, rng_for
from synth.judges.pairwise import prefer, prefer_by_scores
from synth.judges.rubric import RUBRIC_SCHEMA, Rubric, judge, load_rubric, rubric_from
from synth.llm.calls import RECORD_FAILURES, clean_text, complete, failed, step_failure
from synth.llm.prompts import check_prompts, load_prompt
from synth.records import Record, child_id, record_id
from synth.registry import step
from synth.streams import flat_ordered_map, ordered_map
from synth.verifiers.judge import pair_hash

_SAMPLING = {
    "model": {"type": "string"},
    "temperature": {"type": "number", "minimum": 0},
    "max_tokens": {"type": "integer", "minimum": 1},
    "concurrency": {"type": "integer", "minimum": 1},
}
DEFAULT_KINDS = [
    "how-to question",
    "question asking for an explanation",
    "request for a short list",
    "question comparing two things",
    "short factual question",
]


async def _text_call(
    ctx: Context, template: str, variables: dict[str, Any], **params: Any
) -> tuple[str, dict[str, Any]]:
    prompt = load_prompt(template, ctx.base_dir)
    c = await complete(ctx, prompt.render(**variables), prompt=prompt, **params)
    return clean_text(c.text), c.lineage()


@step(
    "instructions",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **_SAMPLING,
            "topics": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "kinds": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "respond": {"type": "boolean", "default": True},
            "instruction_template": {"type": "string", "default": "instruction-gen"},
            "response_template": {"type": "string", "default": "respond"},
            "response_temperature": {"type": "number", "minimum": 0},
            "response_max_tokens": {"type": "integer", "minimum": 1},
        },
        "required": ["topics"],
        "additionalProperties": False,
    },
)
def instructions(
    *,
    topics: list[str],
    kinds: list[str] | None = None,
    respond: bool = True,
    instruction_template: str = "instruction-gen",
    response_template: str = "respond",
    model: str | None = None,
    temperature: float = 1.0,
    response_temperature: float | None = None,
    max_tokens: int = 256,
    response_max_tokens: int | None = None,
    concurrency: int = 8,
) -> Any:
    """Source of (instruction, response) records from topics x kinds (Self-Instruct style)."""
    check_prompts(instruction_template, response_template if respond else None)
    kinds = kinds or DEFAULT_KINDS

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async def indices() -> AsyncIterator[int]:
            i = ctx.start_index
            while True:
                yield i
                i += 1

        async def make(i: int) -> list[Record]:
            rng = rng_for(ctx.seed, "instructions", i)
            topic, kind = rng.choice(topics), rng.choice(kinds)
            calls = []
            try:
                instruction, call = await _text_call(
                    ctx,
                    instruction_template,
                    {"topic": topic, "kind": kind},
                    model=model,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    n_index=i,
                )
                calls.append(call)
                data = {"instruction": instruction}
                if respond:
                    t = temperature if response_temperature is None else response_temperature
                    data["response"], call = await _text_call(
                        ctx,
                        response_template,
                        {"instruction": instruction},
                        model=model,
                        temperature=t,
                        max_tokens=response_max_tokens or max_tokens,
                    )
                    calls.append(call)
            except RECORD_FAILURES as exc:
                data, error = {}, step_failure(ctx, "instructions", exc)
            else:
                error = {}
            meta = {
                "index": i,
                "generator": "instructions",
                "instruct": {"topic": topic, "kind": kind},
                "llm_calls": calls,
                **({"error": error} if error else {}),
            }
            return [Record(record_id(ctx.recipe_hash, ctx.seed, i), data, meta)]

        async with aclosing(flat_ordered_map(indices(), make, concurrency)) as stream:
            async for r in stream:
                yield r

    return run


@step(
    "respond",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **_SAMPLING,
            "field": {"type": "string", "default": "instruction"},
            "to": {"type": "string", "default": "response"},
            "template": {"type": "string", "default": "respond"},
        },
        "additionalProperties": False,
    },
)
def respond(
    *,
    field: str = "instruction",
    to: str = "response",
    template: str = "respond",
    model: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 256,
    concurrency: int = 8,
) -> Any:
    """Add a model response to each record's instruction."""
    check_prompts(template)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async def one(r: Record) -> list[Record]:
            if failed(r):  # an earlier step's failure: on to the chain, which rejects it
                return [r]
            try:
                text, call = await _text_call(
                    ctx,
                    template,
                    {"instruction": r.data.get(field, "")},
                    model=model,
                    temperature=temperature,
                    max_tokens=max_tokens,
                )
            except RECORD_FAILURES as exc:
                return [r.evolve(error=step_failure(ctx, "respond", exc))]
            calls = [*r.meta.get("llm_calls", []), call]
            return [r.evolve(data={**r.data, to: text}, llm_calls=calls)]

        async with aclosing(flat_ordered_map(records, one, concurrency)) as stream:
            async for r in stream:
                yield r

    return run


@step(
    "preference",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **_SAMPLING,
            "field": {"type": "string", "default": "instruction"},
            "template": {"type": "string", "default": "respond"},
            "temperatures": {
                "type": "array",
                "items": {"type": "number", "minimum": 0},
                "minItems": 2,
                "maxItems": 2,
            },
            "models": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
            "judge_model": {"type": "string"},
            "judge_template": {"type": "string", "default": "judge-pairwise"},
            "judge_temperature": {"type": "number", "minimum": 0, "default": 0.0},
            "judge_max_tokens": {"type": "integer", "minimum": 1},
            "judge": {
                "enum": ["pairwise", "pointwise"],
                "default": "pairwise",
                "description": "pairwise: compare in both orders; pointwise: score each alone",
            },
            "rubric": {"type": "string", "default": "instruction-quality"},
            "min_margin": {"type": "number", "minimum": 0, "default": 1.0},
        },
        "additionalProperties": False,
    },
)
def preference(
    *,
    field: str = "instruction",
    template: str = "respond",
    temperatures: list[float] | None = None,
    models: list[str] | None = None,
    model: str | None = None,
    judge_model: str | None = None,
    judge_template: str = "judge-pairwise",
    judge_temperature: float = 0.0,
    judge_max_tokens: int | None = None,
    judge: str = "pairwise",
    rubric: str = "instruction-quality",
    min_margin: float = 1.0,
    temperature: float | None = None,
    max_tokens: int = 256,
    concurrency: int = 8,
) -> Any:
    """(prompt, chosen, rejected) from two sampled responses judged pairwise, both orders."""
    check_prompts(template, judge_template)
    temps = temperatures or ([temperature, temperature] if temperature is not None else [0.3, 1.0])
    pair_models = models or [model, model]  # type: ignore[list-item]
    judging: dict[str, Any] = {"temperature": judge_temperature}
    if judge_max_tokens:
        judging["max_tokens"] = judge_max_tokens

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async def one(r: Record) -> list[Record]:
            if failed(r):
                return [r]
            prompt_text = str(r.data.get(field, ""))
            try:
                (a, ca), (b, cb) = await asyncio.gather(
                    *(
                        _text_call(
                            ctx,
                            template,
                            {"instruction": prompt_text},
                            model=m,
                            temperature=t,
                            max_tokens=max_tokens,
                            n_index=k,
                        )
                        for k, (m, t) in enumerate(zip(pair_models, temps, strict=True))
                    )
                )
                if judge == "pointwise":
                    rb = load_rubric(rubric, ctx.base_dir)
                    pref = await prefer_by_scores(
                        ctx,
                        rb,
                        prompt_text,
                        a,
                        b,
                        min_margin=min_margin,
                        model=judge_model,
                        **judging,
                    )
                else:
                    pref = await prefer(
                        ctx,
                        prompt_text,
                        a,
                        b,
                        model=judge_model,
                        template=judge_template,
                        **judging,
                    )
            except RECORD_FAILURES as exc:
                meta = {**r.meta, "parents": [r.id], "error": step_failure(ctx, "preference", exc)}
                return [Record(child_id(r, "preference"), {"prompt": prompt_text}, meta)]
            chosen, rejected = (b, a) if pref.winner == 1 else (a, b)
            info = {
                "pair": pair_hash(prompt_text, chosen, rejected),
                "method": judge,
                "consistent": pref.consistent,
                "winner": "chosen" if pref.consistent else None,
                # pointwise scores are listed as (chosen, rejected); pairwise verdicts as
                # (as given, swapped), which is what a reader checks for position bias
                "verdicts": list(pref.verdicts)[
                    :: -1 if judge == "pointwise" and pref.winner else 1
                ],
                "reasons": list(pref.reasons),
                "sampling": [
                    {"model": m, "temperature": t} for m, t in zip(pair_models, temps, strict=True)
                ],
            }
            data = {"prompt": prompt_text, "chosen": chosen, "rejected": rejected}
            meta = {
                **r.meta,
                "parents": [r.id],
                "preference": info,
                "llm_calls": [*r.meta.get("llm_calls", []), ca, cb, *pref.calls],
            }
            return [Record(child_id(r, "preference"), data, meta)]

        async with aclosing(flat_ordered_map(records, one, concurrency)) as stream:
            async for rec in stream:
                yield rec

    return run


@step(
    "reward",
    llm=True,
    schema={
        "type": "object",
        "properties": {
            **_SAMPLING,
            **RUBRIC_SCHEMA,
            "instruction": {"type": "string", "default": "instruction"},
            "response": {"type": "string", "default": "response"},
            "template": {"type": "string", "default": "judge-rubric"},
        },
        "additionalProperties": False,
    },
)
def reward(
    *,
    instruction: str = "instruction",
    response: str = "response",
    rubric: str | None = None,
    template: str = "judge-rubric",
    model: str | None = None,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    concurrency: int = 8,
    **rubric_config: Any,
) -> Any:
    """((instruction, response), score): a rubric judge's score as the reward label."""
    check_prompts(template)
    inline = rubric_from(rubric_config) if rubric is None else None
    params: dict[str, Any] = {"temperature": temperature}
    if max_tokens:
        params["max_tokens"] = max_tokens

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        rb: Rubric = inline or load_rubric(str(rubric), ctx.base_dir, rubric_config)

        async def one(r: Record) -> Record | None:
            if failed(r):
                return r
            shown = {"instruction": r.data.get(instruction), "response": r.data.get(response)}
            try:
                j = await judge(ctx, rb, shown, model=model, template=template, **params)
            except RECORD_FAILURES as exc:
                return r.evolve(error=step_failure(ctx, "reward", exc))
            data = {**shown, "score": j.score}
            judgements = [*r.meta.get("judgements", []), j.summary()]
            calls = [*r.meta.get("llm_calls", []), j.call]
            return r.evolve(data=data, judgements=judgements, llm_calls=calls)

        async with aclosing(ordered_map(records, one, concurrency)) as stream:
            async for rec in stream:
                if rec is not None:
                    yield rec

    return run
