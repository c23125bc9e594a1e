"""`novelty`: reject a rewrite that is a near copy of its input.

A paraphrase step that returns its input (or changes two words) produces duplicates that
teach nothing and inflate the dataset. This check is pure text arithmetic, so it goes
first in a chain and a copy never costs a judge call. The edit ratio grows with the
product of the lengths (60 ms for two 45k-character texts), so long pairs are scored in
a thread (`_offload`); the 0.85 default is calibrated in `text.similarity`."""

from __future__ import annotations

from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.records import Record
from synth.registry import verifier
from synth.text.similarity import edit_ratio, ngram_jaccard
from synth.verifiers._fields import get_path
from synth.verifiers._offload import cpu

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "field": {"type": "string", "description": "data field holding the rewrite"},
        "original": {
            "type": "string",
            "description": "where the input text is: a path like meta.originals.body "
            "(default: meta.originals.<field>, which `paraphrase` writes)",
        },
        "n": {"type": "integer", "minimum": 1, "maximum": 8, "default": 3},
        "max_jaccard": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.6},
        "max_edit_ratio": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.85},
        "min_length_ratio": {"type": "number", "minimum": 0, "default": 0.0},
    },
    "required": ["field"],
    "additionalProperties": False,
}


@verifier("novelty", schema=SCHEMA)
def novelty(
    *,
    field: str,
    original: str | None = None,
    n: int = 3,
    max_jaccard: float = 0.6,
    max_edit_ratio: float = 0.85,
    min_length_ratio: float = 0.0,
) -> Verifier:
    """Reject near copies of the input: word n-gram Jaccard or edit ratio too high."""
    source_path = original or f"meta.originals.{field}"

    async def check(record: Record, ctx: Context) -> Verdict:
        text = record.data.get(field)
        source = get_path(record, source_path)
        if not isinstance(text, str) or not text.strip():
            return Verdict(False, 0.0, "empty_rewrite", f"data.{field} is empty or missing")
        if not isinstance(source, str):
            return Verdict(False, 0.0, "missing_original", f"{source_path} is not a string")
        jac, ratio = await cpu(len(text) + len(source), _scores, text, source, n)
        novelty_score = round(1.0 - max(jac, ratio), 4)
        detail = f"{n}-gram jaccard {jac:.2f} (max {max_jaccard}), edit ratio {ratio:.2f} "
        detail += f"(max {max_edit_ratio})"
        if jac > max_jaccard or ratio > max_edit_ratio:
            return Verdict(False, novelty_score, "near_copy", detail)
        if min_length_ratio and len(text) < min_length_ratio * len(source):
            short = f"{len(text)} chars vs {len(source)} in the original"
            return Verdict(False, novelty_score, "too_short", short)
        return Verdict(True, novelty_score, "", detail)

    return check


def _scores(text: str, source: str, n: int) -> tuple[float, float]:
    return ngram_jaccard(text, source, n), edit_ratio(text, source)
