"""`paraphrase`: k rewrites of each record's text fields, everything else carried over.

Labels and other fields are copied unchanged, so a paraphrased support ticket keeps its
category and priority: the rewrite changes wording, never the answer. Variety is drawn
per child from the `variety:` lists (style, register, length, persona) with the record's
own RNG, so the same seed gives the same prompts. The original text is kept in
`meta.originals` for the verifiers that compare against it (novelty, meaning judge,
back-translation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from synth.context import Context, rng_for
from synth.llm.calls import RECORD_FAILURES, clean_text, complete, failed, step_failure
from synth.llm.prompts import check_prompts, load_prompt
from synth.records import Record, child_id
from synth.registry import step
from synth.streams import flat_ordered_map

DEFAULT_VARIETY: dict[str, list[str]] = {
    "style": ["plain", "formal", "casual", "concise", "detailed"],
    "register": ["neutral", "polite", "impatient", "technical"],
    "length": ["shorter than the original", "about the same length", "a little longer"],
    "persona": ["", "a busy professional", "a non-native English speaker", "a retiree"],
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "fields": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "text fields to rewrite",
        },
        "field": {"type": "string", "description": "shorthand for fields: [field]"},
        "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 3},
        "variety": {
            "type": "object",
            "description": "dimension -> options; one option per dimension is drawn per child",
            "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "template": {"type": "string", "default": "paraphrase"},
        "model": {"type": "string"},
        "temperature": {"type": "number", "minimum": 0, "default": 0.9},
        "max_tokens": {"type": "integer", "minimum": 1, "default": 256},
        "concurrency": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": False,
}


@step("paraphrase", schema=SCHEMA, llm=True)
def paraphrase(
    *,
    fields: list[str] | None = None,
    field: str | None = None,
    k: int = 3,
    variety: dict[str, list[str]] | None = None,
    template: str = "paraphrase",
    model: str | None = None,
    temperature: float = 0.9,
    max_tokens: int = 256,
    concurrency: int = 8,
) -> Any:
    """k paraphrases per record with controllable variety; labels carried over unchanged."""
    targets = list(fields or ([field] if field else ["text"]))
    dims = {**DEFAULT_VARIETY, **(variety or {})}
    check_prompts(template)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        prompt = load_prompt(template, ctx.base_dir)

        async def child(parent: Record, j: int) -> Record | None:
            rng = rng_for(ctx.seed, "paraphrase", parent.id, j)
            chosen = {dim: rng.choice(options) for dim, options in sorted(dims.items())}
            data, originals, calls = dict(parent.data), {}, []
            error = None
            for name in targets:
                text = parent.data.get(name)
                if not isinstance(text, str) or not text.strip():
                    ctx.stats["paraphrase_skipped_no_text"] += 1
                    return None
                messages = prompt.render(text=text, **_fill(chosen))
                try:
                    c = await complete(
                        ctx,
                        messages,
                        model=model,
                        prompt=prompt,
                        temperature=temperature,
                        max_tokens=max_tokens,
                        n_index=j,
                    )
                except RECORD_FAILURES as exc:
                    error = step_failure(ctx, "paraphrase", exc)
                    break
                data[name] = clean_text(c.text)
                originals[name] = text
                calls.append(c.lineage())
            meta = {
                **parent.meta,
                "parents": [parent.id],
                "originals": {**parent.meta.get("originals", {}), **originals},
                "paraphrase": {"k": j, "fields": targets, "variety": chosen},
                "llm_calls": [*parent.meta.get("llm_calls", []), *calls],
                **({"error": error} if error else {}),
            }
            return Record(child_id(parent, "paraphrase", j), data, meta)

        async def children(parent: Record) -> list[Record]:
            if failed(parent):  # an earlier step's failure: on to the chain, which rejects it
                return [parent]
            made = await asyncio.gather(*(child(parent, j) for j in range(k)))
            return [r for r in made if r is not None]

        async with aclosing(flat_ordered_map(records, children, concurrency)) as stream:
            async for r in stream:
                yield r

    return run


def _fill(chosen: dict[str, str]) -> dict[str, str]:
    """Template variables for every default dimension, so a recipe may drop one."""
    return {**{dim: "" for dim in DEFAULT_VARIETY}, **chosen}
