"""`grounding`: the evidence quote is really in the source chunk, and the answer follows.

Models invent quotes. The check is fuzzy on purpose (a dropped comma or a changed
quote mark is still the same quote) but strict on substance: `min_quote` is the best-
window similarity of the quote against the chunk (see `text.similarity.partial_ratio`;
its docstring has the calibration of the 0.85 default). The answer is then checked
against the evidence by content-word overlap, or by a judge (`support: judge`) when
answers are free-form enough that overlap is too blunt. Matching against a long chunk
runs in a thread (`_offload`), not on the event loop."""

from __future__ import annotations

from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.judges.rubric import Criterion, Rubric, judge
from synth.llm.calls import RECORD_FAILURES
from synth.records import Record
from synth.registry import verifier
from synth.text.similarity import folded_words, partial_ratio
from synth.text.similarity import support as support_score
from synth.verifiers._fields import get_path
from synth.verifiers._offload import cpu

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "evidence": {"type": "string", "default": "data.evidence"},
        "answer": {"type": "string", "default": "data.answer"},
        "question": {"type": "string", "default": "data.question"},
        "context": {"type": "string", "default": "data.context"},
        "span": {
            "type": "string",
            "default": "meta.longqa.span",
            "description": "[start, end] of the source chunk in the context; else all of it",
        },
        "min_quote": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.85},
        "min_quote_words": {"type": "integer", "minimum": 1, "default": 3},
        "support": {"enum": ["overlap", "judge", "none"], "default": "overlap"},
        "support_against": {"enum": ["evidence", "chunk"], "default": "evidence"},
        "min_support": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
        "model": {"type": "string"},
        "judge_threshold": {"type": "number", "minimum": 1, "maximum": 5, "default": 4},
    },
    "additionalProperties": False,
}

SUPPORT_RUBRIC = Rubric(
    task="Decide whether the answer to the question is supported by the evidence quote.",
    criteria=(
        Criterion(
            "supported",
            "Is the answer correct and fully supported by the evidence?",
            {1: "contradicted or unrelated", 3: "partly supported", 5: "fully supported"},
        ),
    ),
)


@verifier("grounding", schema=SCHEMA)
def grounding(
    *,
    evidence: str = "data.evidence",
    answer: str = "data.answer",
    question: str = "data.question",
    context: str = "data.context",
    span: str = "meta.longqa.span",
    min_quote: float = 0.85,
    min_quote_words: int = 3,
    support: str = "overlap",
    support_against: str = "evidence",
    min_support: float = 0.5,
    model: str | None = None,
    judge_threshold: float = 4,
) -> Verifier:
    """Evidence quote found (fuzzily) in the source chunk; answer supported by it."""
    mode = support
    rubric = Rubric(SUPPORT_RUBRIC.task, SUPPORT_RUBRIC.criteria, judge_threshold)

    async def check(record: Record, ctx: Context) -> Verdict:
        quote, ans = get_path(record, evidence), get_path(record, answer)
        source = get_path(record, context)
        if not isinstance(source, str) or not source:
            return Verdict(False, None, "missing_context", f"{context} is empty")
        bounds = get_path(record, span)
        chunk = source[bounds[0] : bounds[1]] if _is_span(bounds, len(source)) else source
        if not isinstance(quote, str) or len(folded_words(quote)) < min_quote_words:
            return Verdict(False, 0.0, "missing_evidence", f"quote {quote!r} too short")
        if not isinstance(ans, str) or not ans.strip():
            return Verdict(False, 0.0, "empty_answer", f"{answer} is empty")
        found = await cpu(len(chunk), partial_ratio, quote, chunk)
        if found < min_quote:
            detail = f"quote matches the chunk at {found:.2f} (min {min_quote}): {quote[:120]!r}"
            return Verdict(False, round(found, 4), "evidence_not_in_chunk", detail)
        if mode == "none":
            return Verdict(True, round(found, 4), "", f"quote match {found:.2f}")
        if mode == "overlap":
            reference = quote if support_against == "evidence" else chunk
            backed = await cpu(len(reference), support_score, ans, reference)
            detail = f"quote match {found:.2f}; answer support {backed:.2f} (min {min_support})"
            if backed < min_support:
                return Verdict(False, round(backed, 4), "answer_unsupported", detail)
            return Verdict(True, round(min(found, backed), 4), "", detail)
        shown = {"question": get_path(record, question), "answer": ans, "evidence": quote}
        try:
            j = await judge(ctx, rubric, shown, model=model)
        except RECORD_FAILURES as exc:
            return Verdict(False, None, "judge_error", f"{type(exc).__name__}: {exc}")
        detail = f"quote match {found:.2f}; judge {j.score:g}: {j.reason}"
        if j.score < rubric.threshold:
            return Verdict(False, j.score, "answer_unsupported", detail)
        return Verdict(True, j.score, "", detail)

    return check


def _is_span(value: Any, length: int) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
        and 0 <= value[0] < value[1] <= length
    )
