"""Preference judgements between two responses to one prompt.

`prefer` asks a judge which is better twice, the second time with the positions swapped,
and keeps only a verdict given both times: a judge that favours whichever response comes
first (common, and total in small models) produces no preference rather than a wrong one.
`prefer_by_scores` scores each response alone on a rubric (UltraFeedback style), which
has no position at all, and keeps pairs whose scores differ by a margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synth.context import Context
from synth.errors import LLMResponseError
from synth.judges.rubric import Rubric, judge
from synth.llm.calls import complete
from synth.llm.prompts import encode_data, load_prompt

PAIR_SCHEMA = {
    "type": "object",
    "properties": {
        "winner": {"enum": ["A", "B", "tie"]},
        "reason": {"type": "string", "maxLength": 160},
    },
    "required": ["winner", "reason"],
}


@dataclass(frozen=True, slots=True)
class Preference:
    """Which of two responses the judge prefers in both orders. `winner` is 0 (the first
    given), 1 (the second), or None when the two orders disagree or both say tie."""

    winner: int | None
    consistent: bool
    verdicts: tuple[str, str]  # raw winners: as given, then swapped
    reasons: tuple[str, str]
    calls: tuple[dict[str, Any], ...] = ()


async def prefer(
    ctx: Context,
    prompt_text: str,
    first: str,
    second: str,
    *,
    model: str | None = None,
    template: str = "judge-pairwise",
    **params: Any,
) -> Preference:
    """Ask twice, the second time with positions swapped; keep only consistent verdicts.
    Position bias (always preferring A) shows up as an inconsistency and is dropped."""
    prompt = load_prompt(template, ctx.base_dir)
    params.setdefault("temperature", 0.0)
    winners, reasons, calls = [], [], []
    for a, b in ((first, second), (second, first)):
        data = {"prompt": prompt_text, "response_A": a, "response_B": b}
        messages = prompt.render(data=encode_data(data))
        c = await complete(ctx, messages, model=model, schema=PAIR_SCHEMA, prompt=prompt, **params)
        ctx.stats["judge_calls"] += 1
        answer = c.parsed
        if not isinstance(answer, dict) or answer.get("winner") not in ("A", "B", "tie"):
            raise LLMResponseError("pairwise judge gave no winner A, B or tie")
        winners.append(answer["winner"])
        reasons.append(str(answer.get("reason", ""))[:300])
        calls.append(c.lineage())
    as_given = {"A": 0, "B": 1}.get(winners[0])
    swapped = {"A": 1, "B": 0}.get(winners[1])
    consistent = winners[0] != "tie" and as_given == swapped
    ctx.stats["pairwise_consistent" if consistent else "pairwise_inconsistent"] += 1
    return Preference(
        as_given if consistent else None,
        consistent,
        (winners[0], winners[1]),
        (reasons[0], reasons[1]),
        tuple(calls),
    )


async def prefer_by_scores(
    ctx: Context,
    rubric: Rubric,
    prompt_text: str,
    first: str,
    second: str,
    *,
    min_margin: float = 1.0,
    model: str | None = None,
    template: str = "judge-rubric",
    **params: Any,
) -> Preference:
    """UltraFeedback-style preference: each response is scored alone on the rubric, so
    there is no position to be biased by; the pair counts only when the scores differ by
    at least `min_margin` (a tie is no preference). Use it where the judge is too weak
    for pairwise comparison (a judge that always answers "A" keeps nothing pairwise)."""
    results = [
        await judge(
            ctx,
            rubric,
            {"instruction": prompt_text, "response": text},
            model=model,
            template=template,
            **params,
        )
        for text in (first, second)
    ]
    a, b = results[0].score, results[1].score
    winner = 0 if a - b >= min_margin else 1 if b - a >= min_margin else None
    ctx.stats["preference_margin_ok" if winner is not None else "preference_tie"] += 1
    return Preference(
        winner,
        winner is not None,
        (f"{a:g}", f"{b:g}"),
        (results[0].reason, results[1].reason),
        tuple(r.call for r in results),
    )
