"""`backtranslate`: does the meaning survive a round trip?

`mode: translate` translates a field to a pivot language and back, and scores the
result against the original with chrF (sacrebleu): text whose meaning a model cannot
carry through a translation is usually garbled, ambiguous or not the language it claims.
`mode: instruction` (instruction back-translation, as in Humpback) asks the model which
instruction a response answers and scores that against the real instruction: a response
that does not answer its instruction regenerates a different one.

chrF is 0-100 (character n-gram F-score); thresholds are in those units. Typical values:
a faithful round trip of a sentence scores 55-80, a paraphrase 35-55, unrelated text <20.
sacrebleu's chrF is pure Python (about 12 ms on 4k characters), so long texts are scored
in a thread (`_offload`), not on the event loop."""

from __future__ import annotations

from functools import cache
from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.llm.calls import RECORD_FAILURES, clean_text, complete
from synth.llm.prompts import check_prompts, load_prompt
from synth.records import Record
from synth.registry import verifier
from synth.verifiers._fields import get_path
from synth.verifiers._offload import cpu

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "mode": {"enum": ["translate", "instruction"], "default": "translate"},
        "field": {"type": "string", "default": "data.text", "description": "translate mode"},
        "reference": {"type": "string", "description": "compare against (default: field)"},
        "pivot": {"type": "string", "default": "French"},
        "language": {"type": "string", "default": "English"},
        "instruction": {"type": "string", "default": "data.instruction"},
        "response": {"type": "string", "default": "data.response"},
        "threshold": {"type": "number", "minimum": 0, "maximum": 100},
        "model": {"type": "string"},
        "template": {"type": "string"},
        "temperature": {"type": "number", "minimum": 0, "default": 0.0},
        "max_tokens": {"type": "integer", "minimum": 1, "default": 256},
    },
    "additionalProperties": False,
}
DEFAULT_THRESHOLD = {"translate": 40.0, "instruction": 20.0}


@cache
def _metric() -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF()


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence-level chrF (sacrebleu defaults: character 6-grams, beta 2), 0-100."""
    return float(_metric().sentence_score(hypothesis, [reference]).score)


@verifier("backtranslate", schema=SCHEMA, llm=True)
def backtranslate(
    *,
    mode: str = "translate",
    field: str = "data.text",
    reference: str | None = None,
    pivot: str = "French",
    language: str = "English",
    instruction: str = "data.instruction",
    response: str = "data.response",
    threshold: float | None = None,
    model: str | None = None,
    template: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 256,
) -> Verifier:
    """Round trip (pivot language, or response -> instruction) scored with chrF."""
    cutoff = DEFAULT_THRESHOLD[mode] if threshold is None else threshold
    params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
    default = "instruction-from-response" if mode == "instruction" else "translate"
    check_prompts(template or default)

    async def ask(ctx: Context, name: str, **variables: Any) -> str:
        prompt = load_prompt(name, ctx.base_dir)
        c = await complete(ctx, prompt.render(**variables), model=model, prompt=prompt, **params)
        ctx.stats["backtranslate_calls"] += 1
        return clean_text(c.text)

    async def check(record: Record, ctx: Context) -> Verdict:
        if mode == "instruction":
            original, resp = get_path(record, instruction), get_path(record, response)
            if not _text(original) or not _text(resp):
                return Verdict(False, None, "missing_field", f"need {instruction} and {response}")
            try:
                back = await ask(ctx, template or default, response=resp)
            except RECORD_FAILURES as exc:
                return Verdict(False, None, "backtranslate_error", f"{type(exc).__name__}: {exc}")
        else:
            text = get_path(record, field)
            original = get_path(record, reference) if reference else text
            if not _text(text) or not _text(original):
                return Verdict(False, None, "missing_field", f"{field} is empty or missing")
            name = template or default
            try:
                there = await ask(ctx, name, text=text, source=language, target=pivot)
                back = await ask(ctx, name, text=there, source=pivot, target=language)
            except RECORD_FAILURES as exc:
                return Verdict(False, None, "backtranslate_error", f"{type(exc).__name__}: {exc}")
        reference_text = str(original)
        score = round(await cpu(len(back) + len(reference_text), chrf, back, reference_text), 2)
        ok = score >= cutoff
        detail = f"chrF {score:g} (min {cutoff:g}); round trip: {back[:200]!r}"
        return Verdict(ok, score, "" if ok else "roundtrip_low", detail)

    return check


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
