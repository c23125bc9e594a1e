"""How each kind of judge verifier is put to its calibration set (`calibration.Probe`).

A probe asks the judge exactly as the verifier does (same prompt template, rubric,
threshold and sampling parameters), so what the set measures is what will gate; its
fingerprint is what, besides the model and the set, decides the answers, and so belongs
in the key under which a measurement is kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from synth.context import Context
from synth.judges.calibration import DEFAULT_MIN_AGREEMENT, Answer, Probe
from synth.judges.pairwise import prefer
from synth.judges.rubric import ask_yes_no, judge
from synth.llm.prompts import load_prompt
from synth.records import content_hash


def _settings(probe_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "calibration": probe_kwargs.get("calibration"),
        "allow_uncalibrated": bool(probe_kwargs.get("allow_uncalibrated", False)),
        "min_agreement": float(probe_kwargs.get("min_agreement", DEFAULT_MIN_AGREEMENT)),
    }


def rubric_probe(
    rubric_for: Callable[[Context], Any],
    *,
    template: str,
    params: Mapping[str, Any],
    models: Sequence[str | None] = (None,),
    **settings: Any,
) -> Probe:
    """A rubric judge: keeps an item when its aggregate score reaches the threshold."""

    async def ask(ctx: Context, item: Mapping[str, Any], model: str | None) -> Answer:
        rubric = rubric_for(ctx)
        j = await judge(ctx, rubric, item["data"], model=model, template=template, **params)
        return Answer(j.score >= rubric.threshold, j.score)

    def fingerprint(ctx: Context) -> str:
        rubric = rubric_for(ctx)
        source = load_prompt(template, ctx.base_dir).hash
        return content_hash([source, asdict(rubric), dict(params)])

    return Probe("rubric", ask, fingerprint, tuple(models), **_settings(settings))


def yes_no_probe(
    *,
    threshold: float,
    template: str,
    params: Mapping[str, Any],
    logprobs: bool | None,
    model: str | None = None,
    **settings: Any,
) -> Probe:
    """An Ask-LLM judge: keeps an item when P(yes) reaches the threshold."""

    async def ask(ctx: Context, item: Mapping[str, Any], model: str | None) -> Answer:
        yn = await ask_yes_no(
            ctx, item["data"], model=model, template=template, logprobs=logprobs, **params
        )
        return Answer(yn.score >= threshold, yn.score)

    def fingerprint(ctx: Context) -> str:
        source = load_prompt(template, ctx.base_dir).hash
        return content_hash([source, threshold, logprobs, dict(params)])

    return Probe("yes_no", ask, fingerprint, (model,), **_settings(settings), default_set="ask-llm")


def pairwise_probe(
    *, template: str, params: Mapping[str, Any], model: str | None = None, **settings: Any
) -> Probe:
    """A pairwise judge: right when it prefers the chosen response in both orders; a
    verdict that follows the position instead of the response counts as a flip."""

    async def ask(ctx: Context, item: Mapping[str, Any], model: str | None) -> Answer:
        p = await prefer(
            ctx,
            str(item["prompt"]),
            str(item["chosen"]),
            str(item["rejected"]),
            model=model,
            template=template,
            **params,
        )
        follows_position = p.verdicts[0] == p.verdicts[1] and p.verdicts[0] in ("A", "B")
        return Answer(p.winner == 0, 1.0 if p.winner == 0 else 0.0, follows_position)

    def fingerprint(ctx: Context) -> str:
        return content_hash([load_prompt(template, ctx.base_dir).hash, dict(params)])

    return Probe(
        "pairwise", ask, fingerprint, (model,), **_settings(settings), default_set="pairwise"
    )
