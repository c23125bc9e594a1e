"""LLM-judge verifiers: `judge` (rubric, optional panel), `ask_llm` (yes/no quality),
`pairwise` (preference pairs, asked in both orders).

Each returns a verdict whose score is the judge's and whose detail carries the per-
criterion scores and the judge's reason, so lineage says why a record was kept or cut.
A judge that cannot be parsed or reached rejects the record (`judge_error`) instead of
crashing the run, and a cheap verifier placed before it saves the call entirely."""

from __future__ import annotations

import asyncio
from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.judges import calibration as calib
from synth.judges import probes
from synth.judges.calibration import CONFIG_SCHEMA as CALIBRATION
from synth.judges.pairwise import prefer
from synth.judges.rubric import (
    AGGREGATES,
    RUBRIC_SCHEMA,
    Judgement,
    Rubric,
    ask_yes_no,
    judge,
    load_rubric,
    panel_scores,
    panel_verdict,
    rubric_from,
)
from synth.llm.calls import RECORD_FAILURES
from synth.llm.prompts import check_prompts
from synth.records import Record, content_hash
from synth.registry import verifier
from synth.verifiers._fields import get_path

_SAMPLING = {
    "model": {"type": "string"},
    "template": {"type": "string"},
    "temperature": {"type": "number", "minimum": 0},
    "max_tokens": {"type": "integer", "minimum": 1},
    "label": {"type": "string", "pattern": "^[a-z0-9_]+$", "description": "stats key"},
    **CALIBRATION,
}
_SHOW = {
    "description": "what the judge sees: {label: path} (paths like data.answer, "
    "meta.originals.body); default: every data field",
    "type": "object",
    "additionalProperties": {"type": "string"},
}

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **RUBRIC_SCHEMA,
        **_SAMPLING,
        "show": _SHOW,
        "models": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "panel": {"enum": [*AGGREGATES, "majority"]},
    },
    "additionalProperties": False,
}


def shown(record: Record, show: dict[str, str] | None) -> dict[str, Any]:
    if not show:
        return dict(record.data)
    return {label: get_path(record, path) for label, path in show.items()}


@verifier("judge", schema=JUDGE_SCHEMA, llm=True)
def make_judge(
    *,
    show: dict[str, str] | None = None,
    model: str | None = None,
    models: list[str] | None = None,
    panel: str = "mean",
    template: str = "judge-rubric",
    temperature: float = 0.0,
    max_tokens: int | None = None,
    label: str = "judge",
    rubric: str | None = None,
    allow_uncalibrated: bool = False,
    calibration: str | None = None,
    min_agreement: float = calib.DEFAULT_MIN_AGREEMENT,
    **rubric_config: Any,
) -> Verifier:
    """Rubric judge: 1-5 per criterion with anchored descriptions; keeps score >= threshold."""
    check_prompts(template)
    inline = rubric_from(rubric_config) if rubric is None else None
    loaded: dict[str, Rubric] = {}
    judges = models or [model]  # type: ignore[list-item]
    params: dict[str, Any] = {"temperature": temperature}
    if max_tokens:
        params["max_tokens"] = max_tokens

    def rubric_for(ctx: Context) -> Rubric:
        rb = inline or loaded.get("r")
        if rb is None:
            rb = loaded.setdefault("r", load_rubric(str(rubric), ctx.base_dir, rubric_config))
        return rb

    async def check(record: Record, ctx: Context) -> Verdict:
        rb = rubric_for(ctx)
        data = shown(record, show)
        try:
            results: list[Judgement] = list(
                await asyncio.gather(
                    *(judge(ctx, rb, data, model=m, template=template, **params) for m in judges)
                )
            )
        except RECORD_FAILURES as exc:
            ctx.stats[f"{label}_errors"] += 1
            return Verdict(False, None, "judge_error", f"{type(exc).__name__}: {exc}")
        score, ok, agreement = panel_verdict(results, rb, panel)
        if len(results) > 1:
            ctx.stats[f"{label}_panel_{'agree' if agreement == 1.0 else 'disagree'}"] += 1
        ctx.stats[f"{label}_score_{round(score)}"] += 1
        detail = _describe(results, score, rb.threshold, agreement)
        info = {"judgements": [j.summary() for j in results], "threshold": rb.threshold}
        if len(results) > 1:
            info["agreement"] = round(agreement, 4)
        short = [] if ok else rb.short_of(panel_scores(results, panel))
        if short and score >= rb.threshold:  # the mean passed, a criterion did not: name it
            below = ", ".join(f"{n}={v:g} < min {m:g}" for n, v, m in short)
            return Verdict(False, score, f"judge_low_{short[0][0]}", f"{below}; {detail}", info)
        return Verdict(ok, score, "" if ok else "judge_low_score", detail, info)

    probe = probes.rubric_probe(
        rubric_for,
        template=template,
        params=params,
        models=judges,
        calibration=calibration,
        allow_uncalibrated=allow_uncalibrated,
        min_agreement=min_agreement,
    )
    calib.attach(check, probe)
    return check


def _describe(results: list[Judgement], score: float, threshold: float, agreement: float) -> str:
    parts = []
    for j in results:
        scores = " ".join(f"{k}={v:g}" for k, v in j.scores.items())
        who = f"[{j.model}] " if len(results) > 1 else ""
        parts.append(f"{who}{scores}: {j.reason}".strip())
    head = f"score {score:g} (threshold {threshold:g})"
    if len(results) > 1:
        head += f", panel agreement {agreement:.2f}"
    return head + "; " + " | ".join(parts)


ASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **_SAMPLING,
        "show": _SHOW,
        "threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
        "logprobs": {
            "type": ["boolean", "null"],
            "default": None,
            "description": "null: use logprobs when the client returns them",
        },
    },
    "additionalProperties": False,
}


@verifier("ask_llm", schema=ASK_SCHEMA, llm=True)
def make_ask_llm(
    *,
    show: dict[str, str] | None = None,
    threshold: float = 0.5,
    model: str | None = None,
    template: str = "ask-llm",
    logprobs: bool | None = None,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    label: str = "ask_llm",
    allow_uncalibrated: bool = False,
    calibration: str | None = None,
    min_agreement: float = calib.DEFAULT_MIN_AGREEMENT,
) -> Verifier:
    """Ask-LLM: "is this informative for training?" scored as P(yes); keeps >= threshold."""
    check_prompts(template)
    params: dict[str, Any] = {"temperature": temperature}
    if max_tokens:
        params["max_tokens"] = max_tokens

    async def check(record: Record, ctx: Context) -> Verdict:
        try:
            yn = await ask_yes_no(
                ctx,
                shown(record, show),
                model=model,
                template=template,
                logprobs=logprobs,
                **params,
            )
        except RECORD_FAILURES as exc:
            return Verdict(False, None, "judge_error", f"{type(exc).__name__}: {exc}")
        ctx.stats[f"{label}_score_{min(9, int(yn.score * 10))}"] += 1
        ok = yn.score >= threshold
        detail = f"P(yes)={yn.score:.3f} by {yn.method} (threshold {threshold})"
        info = {"p_yes": round(yn.score, 4), "method": yn.method}
        return Verdict(ok, round(yn.score, 4), "" if ok else "ask_llm_no", detail, info)

    probe = probes.yes_no_probe(
        threshold=threshold,
        template=template,
        params=params,
        logprobs=logprobs,
        model=model,
        calibration=calibration,
        allow_uncalibrated=allow_uncalibrated,
        min_agreement=min_agreement,
    )
    calib.attach(check, probe)
    return check


PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        **_SAMPLING,
        "prompt": {"type": "string", "default": "data.prompt"},
        "chosen": {"type": "string", "default": "data.chosen"},
        "rejected": {"type": "string", "default": "data.rejected"},
        "reuse": {
            "type": "boolean",
            "default": True,
            "description": "trust meta.preference when the step already judged this pair",
        },
    },
    "additionalProperties": False,
}


def pair_hash(prompt: Any, chosen: Any, rejected: Any) -> str:
    return content_hash([prompt, chosen, rejected])[:16]


@verifier("pairwise", schema=PAIR_SCHEMA, llm=True)
def make_pairwise(
    *,
    prompt: str = "data.prompt",
    chosen: str = "data.chosen",
    rejected: str = "data.rejected",
    reuse: bool = True,
    model: str | None = None,
    template: str = "judge-pairwise",
    temperature: float = 0.0,
    max_tokens: int | None = None,
    label: str = "pairwise",
    allow_uncalibrated: bool = False,
    calibration: str | None = None,
    min_agreement: float = calib.DEFAULT_MIN_AGREEMENT,
) -> Verifier:
    """Preference pairs: the judge must prefer `chosen` in both orders (swap-consistent)."""
    check_prompts(template)
    params: dict[str, Any] = {"temperature": temperature}
    if max_tokens:
        params["max_tokens"] = max_tokens

    async def check(record: Record, ctx: Context) -> Verdict:
        p, a, b = (get_path(record, x) for x in (prompt, chosen, rejected))
        if not all(isinstance(x, str) and x.strip() for x in (p, a, b)):
            return Verdict(False, None, "missing_field", f"need {prompt}, {chosen}, {rejected}")
        if a.strip() == b.strip():
            return Verdict(False, None, "identical_responses", "chosen equals rejected")
        known = record.meta.get("preference") or {}
        if reuse and known.get("pair") == pair_hash(p, a, b):
            consistent, winner = bool(known.get("consistent")), known.get("winner")
            verdicts = known.get("verdicts", [])
        else:
            try:
                pref = await prefer(ctx, p, a, b, model=model, template=template, **params)
            except RECORD_FAILURES as exc:
                return Verdict(False, None, "judge_error", f"{type(exc).__name__}: {exc}")
            consistent, verdicts = pref.consistent, list(pref.verdicts)
            winner = {0: "chosen", 1: "rejected"}.get(pref.winner)  # type: ignore[arg-type]
        if known.get("method") == "pointwise" and reuse and known.get("pair") == pair_hash(p, a, b):
            detail = f"scores (chosen, rejected) judged alone: {verdicts}"
            if not consistent:
                return Verdict(False, 0.0, "preference_tie", detail)
        else:
            detail = f"verdicts as given / swapped: {verdicts}"
        if not consistent:
            return Verdict(False, 0.0, "pairwise_inconsistent", detail)
        if winner != "chosen":
            return Verdict(False, 0.0, "prefers_rejected", detail)
        return Verdict(True, 1.0, "", detail)

    probe = probes.pairwise_probe(
        template=template,
        params=params,
        model=model,
        calibration=calibration,
        allow_uncalibrated=allow_uncalibrated,
        min_agreement=min_agreement,
    )
    calib.attach(check, probe)
    return check
