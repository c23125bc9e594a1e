"""`synth run --dry-run`: the calls, tokens and cost of a run, before anything is spent.

The recipe's own steps and verifiers run on a few sample records with a recording LLM in
place of the real client: every call they would make is captured with its rendered
messages and `max_tokens`, and answered with a placeholder (for a JSON Schema, a minimal
valid instance) so the pipeline carries on. Input tokens are counted on the rendered
prompts; output tokens are taken at `max_tokens`, an upper bound. The per-record figures
are then scaled to `n`, assuming every record passes (rejections add attempts, up to the
budget's `max_attempts`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from synth.context import Context
from synth.errors import ConfigError
from synth.llm.types import Completion
from synth.records import Record

DEFAULT_OUTPUT_TOKENS = 256


@dataclass
class _Recorder:
    """The LLM seam, minus the model: records calls and answers with placeholders."""

    model: str | None
    calls: list[tuple[str, list[dict[str, Any]], int]] = field(default_factory=list)
    returns_logprobs: bool = False

    async def complete(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        n_index: int = 0,
        template_hash: str | None = None,
        **params: Any,
    ) -> Completion:
        from synth.llm.structured import with_instruction

        name = model or self.model
        if not name:
            raise ConfigError(
                "no model for this LLM call",
                expected="a model on the step, a recipe `model:`, or --model",
                fix="add `model: local/smollm2` (or e.g. openai/gpt-4o-mini) to the recipe",
            )
        out = int(
            params.get("max_tokens") or params.get("max_completion_tokens") or DEFAULT_OUTPUT_TOKENS
        )
        sent = with_instruction(messages, schema) if schema is not None else messages
        self.calls.append((name, sent, out))
        parsed = example(schema) if schema is not None else None
        text = "placeholder answer" if schema is None else _json(parsed)
        return Completion(
            text=text, parsed=parsed, model=name, template_hash=template_hash, n_index=n_index
        )

    def usage(self) -> dict[str, Any]:
        return {"calls": len(self.calls)}

    async def aclose(self) -> None:
        return None


def estimate(
    recipe: Any, n: int, *, samples: int = 3, seed: int = 0, prompts: int = 0
) -> dict[str, Any]:
    """Estimated calls, input/output tokens and cost for `n` records, total and per model;
    with `prompts`, also the first `prompts` calls' rendered messages (enough records are
    sampled to make them), which is what a recipe author checks before paying."""
    from synth.llm.litellm import price
    from synth.llm.tokens import count_tokens

    recorder = _Recorder(recipe.model)
    produced = asyncio.run(_sample(recipe, recorder, max(samples, prompts), seed))
    per_model: dict[str, dict[str, Any]] = {}
    for model, messages, out in recorder.calls:
        m = per_model.setdefault(model, {"calls": 0, "input_tokens": 0, "output_tokens": 0})
        m["calls"] += 1
        m["input_tokens"] += count_tokens(messages, model=model)
        m["output_tokens"] += out
    scale = n / max(produced, 1)
    total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}
    unpriced = []
    for model, m in per_model.items():
        for k in ("calls", "input_tokens", "output_tokens"):
            m[k] = round(m[k] * scale)
            total[k] += m[k]
        p_in, p_out = price(model)
        m["cost_usd"] = round(m["input_tokens"] * p_in + m["output_tokens"] * p_out, 6)
        if not (p_in or p_out) and not model.startswith("local/"):
            unpriced.append(model)
        total["cost_usd"] = round(total["cost_usd"] + m["cost_usd"], 6)
    return {
        "n": n,
        "sampled_records": produced,
        **total,
        "by_model": per_model,
        "unpriced_models": unpriced,
        "assumes": "every record passes; output tokens at max_tokens (an upper bound)",
        **(
            {"prompts": [{"model": m, "messages": msgs} for m, msgs, _ in recorder.calls[:prompts]]}
            if prompts
            else {}
        ),
    }


def format_prompts(est: dict[str, Any]) -> str:
    """The recorded prompts as a person reads them: one block per call, one per message."""
    shown = est.get("prompts") or []
    if not shown:
        return "no prompts: this recipe makes no model calls"
    blocks = []
    for i, call in enumerate(shown, 1):
        lines = [f"--- prompt {i} of {len(shown)} (model {call['model']}) ---"]
        for msg in call["messages"]:
            content = msg.get("content")
            text = content if isinstance(content, str) else repr(content)
            lines.append(f"[{msg.get('role', '?')}]")
            lines.append(text)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def format_estimate(est: dict[str, Any], budget: Any = None) -> str:
    lines = [
        f"dry run: {est['n']} records, estimated from {est['sampled_records']} sample records "
        f"({est['assumes']}); nothing was sent to a model"
    ]
    for model, m in est["by_model"].items():
        lines.append(
            f"  {model}: {m['calls']:,} calls, {m['input_tokens']:,} input + "
            f"{m['output_tokens']:,} output tokens, ${m['cost_usd']:.4f}"
        )
    lines.append(
        f"  total: {est['calls']:,} calls, {est['input_tokens'] + est['output_tokens']:,} tokens, "
        f"${est['cost_usd']:.4f}"
    )
    if est["unpriced_models"]:
        lines.append(f"  no price known for {', '.join(est['unpriced_models'])}: cost not counted")
    cap = getattr(budget, "max_cost_usd", None)
    if cap is not None and est["cost_usd"] > cap:
        lines.append(f"  the budget max_cost_usd={cap} would stop the run before n")
    cap = getattr(budget, "max_tokens", None)
    if cap is not None and est["input_tokens"] + est["output_tokens"] > cap:
        lines.append(f"  the budget max_tokens={cap} would stop the run before n")
    if not est["by_model"]:
        lines.append("  this recipe makes no model calls")
    return "\n".join(lines)


async def _sample(recipe: Any, recorder: _Recorder, samples: int, seed: int) -> int:
    """Run the recipe's steps and verifiers on `samples` source records; returns how many
    records came out (a step with `samples: k` makes k per source record)."""
    ctx = Context(
        seed=seed,
        recipe_name=recipe.name,
        recipe_hash=recipe.hash,
        base_dir=recipe.base_dir,
        settings=dict(recipe.settings),
        llm=recorder,
    )
    steps, chain = recipe.instantiate()
    taken = 0

    async def nothing() -> AsyncIterator[Record]:
        return
        yield  # pragma: no cover

    async def take(stream: AsyncIterator[Record]) -> AsyncIterator[Record]:
        nonlocal taken
        async for r in stream:
            if taken >= samples:
                return
            taken += 1
            yield r

    stream: AsyncIterator[Record] = take(steps[0](nothing(), ctx))
    for fn in steps[1:]:
        stream = fn(stream, ctx)
    outputs = 0
    async for r in stream:
        await chain.check(r, ctx)
        outputs += 1
    return outputs or taken


def example(schema: dict[str, Any] | None) -> Any:
    """A minimal instance of a JSON Schema (the placeholder a dry run answers with)."""
    if not schema:
        return {}
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: example(props.get(k, {})) for k in schema.get("required", list(props))}
    if kind == "array":
        return [example(schema.get("items", {})) for _ in range(int(schema.get("minItems", 0)))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return low + (1 if "exclusiveMinimum" in schema else 0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "x" * int(schema.get("minLength", 1))


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
