"""`longqa` source: long-context QA from documents (a file or a folder).

Documents are split into token-aware overlapping chunks; a model writes several
(question, answer, evidence quote) per chunk as schema-validated JSON; each becomes an
example whose context is the whole document, or (`context_tokens`) a context of about
that many tokens built by adding other documents around the chunk, with the chunk placed
at depths cycling through `depths`. The chunk's span and achieved depth go into
`meta.longqa`, which is what the `grounding` verifier and depth-sliced evals read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from synth.context import Context, rng_for
from synth.llm.calls import RECORD_FAILURES, complete, step_failure
from synth.llm.prompts import check_prompts, load_prompt
from synth.llm.tokens import counter_for
from synth.records import Record, record_id
from synth.registry import step
from synth.streams import flat_ordered_map
from synth.text.chunks import (
    Chunk,
    Document,
    Placement,
    build_context,
    chunk,
    load_documents,
    whole_document,
)
from synth.text.similarity import fold_text

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "description": "file or folder of .txt/.md/.jsonl"},
        "text_field": {"type": "string", "default": "text"},
        "chunk_tokens": {"type": "integer", "minimum": 32, "default": 384},
        "overlap": {"type": "integer", "minimum": 0, "default": 48},
        "questions_per_chunk": {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
        "context_tokens": {
            "type": ["integer", "null"],
            "minimum": 64,
            "description": "null: the whole document is the context",
        },
        "depths": {
            "type": "array",
            "items": {"type": "number", "minimum": 0, "maximum": 1},
            "minItems": 1,
            "default": [0.0, 0.25, 0.5, 0.75, 1.0],
        },
        "shuffle": {"type": "boolean", "default": True},
        "template": {"type": "string", "default": "longqa"},
        "model": {"type": "string"},
        "temperature": {"type": "number", "minimum": 0, "default": 0.7},
        "max_tokens": {"type": "integer", "minimum": 1, "default": 768},
        "concurrency": {"type": "integer", "minimum": 1},
    },
    "required": ["input"],
    "additionalProperties": False,
}


def qa_schema(n: int) -> dict[str, Any]:
    """`maxItems` bounds the answer where the provider enforces the schema (llama.cpp
    grammars). Strings carry no `maxLength`: llama.cpp expands it into one grammar rule
    per character, which makes sampling several times slower."""
    item = {
        "type": "object",
        "properties": {  # evidence first: copy, then ask (see templates/prompts/longqa.j2)
            "evidence": {"type": "string", "minLength": 3},
            "question": {"type": "string", "minLength": 3},
            "answer": {"type": "string", "minLength": 1},
        },
        "required": ["evidence", "question", "answer"],
    }
    qa = {"type": "array", "items": item, "minItems": 1, "maxItems": n}
    return {"type": "object", "properties": {"qa": qa}, "required": ["qa"]}


@step("longqa", schema=SCHEMA, llm=True)
def longqa(
    *,
    input: str,
    text_field: str = "text",
    chunk_tokens: int = 384,
    overlap: int = 48,
    questions_per_chunk: int = 3,
    context_tokens: int | None = None,
    depths: list[float] | None = None,
    shuffle: bool = True,
    template: str = "longqa",
    model: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 768,
    concurrency: int = 8,
) -> Any:
    """Long-context QA: chunk documents, generate grounded QA, place chunks at depths."""
    q = questions_per_chunk
    depth_cycle = list(depths or [0.0, 0.25, 0.5, 0.75, 1.0])
    check_prompts(template)

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        docs = load_documents(_locate(input, ctx.base_dir), text_field=text_field)
        # The first lookup may load a tokenizer (litellm's, or the GGUF's): off the loop.
        count = await asyncio.to_thread(
            counter_for, model or (ctx.llm.model if ctx.llm is not None else None)
        )
        chunks: list[Chunk] = []
        for i, d in enumerate(docs):
            chunks += chunk(d.text, max_tokens=chunk_tokens, overlap=overlap, count=count, doc=i)
        order = list(range(len(chunks)))
        doc_order = list(range(len(docs)))
        if shuffle:
            rng_for(ctx.seed, "longqa-order").shuffle(order)
        prompt = load_prompt(template, ctx.base_dir)
        schema = qa_schema(q)
        ctx.stats["longqa_documents"] = len(docs)
        ctx.stats["longqa_chunks"] = len(chunks)

        async def ordinals() -> AsyncIterator[int]:
            c = ctx.start_index // q  # endless: later passes ask for new samples
            while True:
                yield c
                c += 1

        async def make(c: int) -> list[Record]:
            ch = chunks[order[c % len(chunks)]]
            doc = docs[ch.doc]
            # One line of text: hard-wrapped documents would otherwise be copied into the
            # quote with raw line breaks, which are invalid inside a JSON string.
            text = " ".join(doc.text[ch.start : ch.end].split())
            messages = prompt.render(chunk=text, n=q)
            try:
                comp = await complete(
                    ctx,
                    messages,
                    model=model,
                    schema=schema,
                    prompt=prompt,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    n_index=c // len(chunks),
                )
            except RECORD_FAILURES as exc:
                i = max(c * q, ctx.start_index)
                meta = {
                    "index": i,
                    "generator": "longqa",
                    "longqa": {"document": doc.name, "chunk": ch.index},
                    "error": step_failure(ctx, "longqa", exc),
                }
                return [Record(record_id(ctx.recipe_hash, ctx.seed, i), {}, meta)]
            items = (comp.parsed or {}).get("qa") or []
            call = comp.lineage()
            out, seen = [], set()
            for j, qa in enumerate(items[:q]):
                i = c * q + j
                key = (fold_text(str(qa["question"])), fold_text(str(qa["evidence"])))
                if key in seen:  # small models repeat themselves: one copy is enough
                    ctx.stats["longqa_repeated_qa"] += 1
                    continue
                seen.add(key)
                if i < ctx.start_index:
                    continue
                target = depth_cycle[i % len(depth_cycle)]
                place = _place(docs, ch, context_tokens, target, count, ctx.seed, i, doc_order)
                data = {
                    "context": place.context,
                    "question": str(qa["question"]).strip(),
                    "answer": str(qa["answer"]).strip(),
                    "evidence": str(qa["evidence"]).strip(),
                }
                meta = {
                    "index": i,
                    "generator": "longqa",
                    "longqa": _lineage(doc, ch, place, target, context_tokens),
                    "llm_calls": [call] if j == 0 else [{**call, "shared": True}],
                }
                out.append(Record(record_id(ctx.recipe_hash, ctx.seed, i), data, meta))
            return out

        async with aclosing(flat_ordered_map(ordinals(), make, concurrency)) as stream:
            async for r in stream:
                yield r

    return run


def _place(
    docs: list[Document],
    ch: Chunk,
    context_tokens: int | None,
    target: float,
    count: Any,
    seed: int,
    i: int,
    doc_order: list[int],
) -> Placement:
    if context_tokens is None:
        return whole_document(docs, ch, count)
    order = list(doc_order)
    rng_for(seed, "longqa-filler", i).shuffle(order)
    return build_context(
        docs, ch, context_tokens=context_tokens, depth=target, count=count, order=order
    )


def _lineage(
    doc: Document, ch: Chunk, place: Placement, target: float, context_tokens: int | None
) -> dict[str, Any]:
    return {
        "document": doc.name,
        "chunk": ch.index,
        "chunk_chars": [ch.start, ch.end],
        "span": list(place.span),
        "depth": place.depth,
        "target_depth": None if context_tokens is None else target,
        "context_tokens": place.tokens,
        "documents": list(place.documents),
    }


def _locate(ref: str, base_dir: Path) -> Path:
    """`--input` is taken from the working directory; a recipe default (e.g. the shipped
    corpus) from the recipe's project root."""
    path = Path(ref).expanduser()
    if path.exists() or path.is_absolute():
        return path
    return base_dir / path
