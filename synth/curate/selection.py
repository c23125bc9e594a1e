"""Ask-LLM data selection: score every example with the Ask-LLM question, keep the best.

Sachdeva et al. (2024) show that asking an instruction-tuned model "does this contain
informative signal for training?" and keeping the examples with the highest P(yes)
beats perplexity filtering and full-data training at a fraction of the data. Scores are
kept in the output (`meta.ask_llm` for synth records, `ask_llm_score` for plain rows),
so a later run can re-cut at another threshold without asking again (and the response
cache makes asking again free anyway)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.context import Context
from synth.errors import ConfigError
from synth.files import atomic_output
from synth.judges.rubric import ask_yes_no
from synth.llm.calls import RECORD_FAILURES
from synth.streams import aiter_of, ordered_map


@dataclass(frozen=True, slots=True)
class Scored:
    line: dict[str, Any]  # the input line as parsed
    score: float | None  # None when the judge failed for this example
    method: str
    error: str = ""


def payload(line: dict[str, Any]) -> dict[str, Any]:
    """What the judge sees: a synth record's `data`, or the plain row itself."""
    if isinstance(line.get("data"), dict) and "id" in line:
        return dict(line["data"])
    return dict(line)


async def score_all(
    lines: Sequence[dict[str, Any]],
    ctx: Context,
    *,
    fields: Sequence[str] = (),
    model: str | None = None,
    concurrency: int = 8,
    logprobs: bool | None = None,
) -> list[Scored]:
    """The Ask-LLM score of every line, in input order."""

    async def one(line: dict[str, Any]) -> Scored:
        data = payload(line)
        shown = {f: data.get(f) for f in fields} if fields else data
        try:
            yn = await ask_yes_no(ctx, shown, model=model, logprobs=logprobs)
        except RECORD_FAILURES as exc:
            ctx.stats["ask_llm_errors"] += 1
            return Scored(line, None, "", f"{type(exc).__name__}: {exc}")
        return Scored(line, yn.score, yn.method)

    return [s async for s in ordered_map(aiter_of(lines), one, concurrency)]


def choose(
    scored: Sequence[Scored], *, keep: float | None = None, threshold: float | None = None
) -> list[int]:
    """Indices to keep, in input order: the top `keep` fraction by score (ties keep the
    earlier example), or every score >= `threshold`. Failed scores are never kept."""
    valid = [i for i, s in enumerate(scored) if s.score is not None]
    if threshold is not None:
        return [i for i in valid if scored[i].score >= threshold]  # type: ignore[operator]
    if keep is None or not 0 < keep <= 1:
        raise ConfigError(
            "--keep must be in (0, 1]", path="--keep", found=keep, expected="a fraction such as 0.1"
        )
    count = math.ceil(keep * len(scored))
    ranked = sorted(valid, key=lambda i: (-(scored[i].score or 0.0), i))
    return sorted(ranked[:count])


def failures(scored: Sequence[Scored]) -> list[tuple[str, int]]:
    """The distinct reasons examples could not be scored, most frequent first."""
    counts: dict[str, int] = {}
    for s in scored:
        if s.score is None:
            counts[s.error or "no score"] = counts.get(s.error or "no score", 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def check_failures(scored: Sequence[Scored], *, file: str, model: str | None) -> None:
    """Refuse a selection where more than half the scores failed: keeping "the top 10%"
    of the few examples a judge happened to parse is not a selection, and a script that
    only looks at the exit status must not take it for one."""
    failed = sum(1 for s in scored if s.score is None)
    if failed * 2 <= len(scored):
        return
    reasons = "; ".join(f"{n}x {why[:120]}" for why, n in failures(scored)[:3])
    raise ConfigError(
        f"{failed} of {len(scored)} examples could not be scored by {model}; nothing written",
        file=file,
        path="--model",
        expected="a judge that answers the Ask-LLM question for most examples",
        found=reasons,
        fix="use a stronger judge (e.g. --model openai/gpt-4o-mini); "
        "small local models rarely answer a bare yes/no",
    )


def annotate(s: Scored, model: str | None) -> dict[str, Any]:
    """The line with its score: in `meta.ask_llm` for synth records, else top-level."""
    line = dict(s.line)
    info = {"score": s.score, "method": s.method, "model": model}
    if isinstance(line.get("data"), dict) and "id" in line:
        line["meta"] = {**(line.get("meta") or {}), "ask_llm": info}
    else:
        line["ask_llm_score"] = s.score
    return line


def write_atomic(path: Path, lines: Sequence[dict[str, Any]]) -> None:
    with atomic_output(path) as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
