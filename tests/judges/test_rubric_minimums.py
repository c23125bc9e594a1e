"""Multi-criterion rubrics keep a record only when every criterion reaches its own minimum:
a QA pair scored answerable=5, correct=1 averages 3 and is still a wrong answer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from text_fixtures import ROOT, check, make_ctx

from synth.errors import ConfigError
from synth.judges.rubric import Judgement, panel_verdict, rubric_from
from synth.records import Record
from synth.runner.recipe import from_dict
from synth.testing import ScriptedLLM
from synth.verifiers.judge import make_judge

QA = Record(
    "q1",
    {
        "question": "When was the charge made?",
        "answer": "Last week.",
        "evidence": "There is a $176.78 payment to you dated two days ago.",
    },
)
CRITERIA = [
    {"name": "relevance", "description": "on topic?"},
    {"name": "correctness", "description": "accurate?"},
    {"name": "clarity", "description": "clear?", "min": 2},
]
SCALE = {1: "bad", 5: "good"}


def test_shipped_qa_rubric_rejects_a_correct_1_whose_mean_reaches_the_threshold() -> None:
    llm = ScriptedLLM([{"answerable": 5, "correct": 1, "reason": "the date is wrong"}])
    ctx = make_ctx(llm)
    rec, verdict = check([("qa-quality", make_judge(rubric="qa-quality"))], QA, ctx)
    assert not verdict.ok
    assert verdict.reason == "judge_low_correct"
    assert "correct=1 < min 3" in verdict.detail and "the date is wrong" in verdict.detail
    assert rec.meta["reject_reason"] == "judge_low_correct"
    assert ctx.stats["rejected_judge_low_correct"] == 1


def test_every_criterion_at_the_threshold_is_kept() -> None:
    llm = ScriptedLLM([{"answerable": 3, "correct": 3, "reason": "partly"}])
    rec, verdict = check([("qa", make_judge(rubric="qa-quality"))], QA, make_ctx(llm))
    assert verdict.ok and rec.meta["verdicts"][-1]["score"] == 3.0


def test_a_criterion_may_set_a_lower_minimum_of_its_own() -> None:
    judge = make_judge(criteria=CRITERIA, scale=SCALE, threshold=3)
    llm = ScriptedLLM(
        [
            {"relevance": 4, "correctness": 4, "clarity": 2, "reason": "terse"},
            {"relevance": 4, "correctness": 2, "clarity": 4, "reason": "a wrong step"},
        ]
    )
    ctx = make_ctx(llm)
    record = Record("r", {"instruction": "Add 2 and 2.", "response": "4"})
    _, kept = check([("q", judge)], record, ctx)
    _, cut = check([("q", judge)], record, ctx)
    assert kept.ok  # clarity 2 meets its own minimum 2; the mean 3.33 meets 3
    assert not cut.ok and cut.reason == "judge_low_correctness"


def test_a_minimum_outside_the_scale_is_refused_at_load() -> None:
    raw = {
        "steps": [{"use": "faker", "template": "support-tickets"}],
        "verify": [{"use": "judge", "criteria": [{"name": "x", "description": "d", "min": 7}]}],
    }
    with pytest.raises(ConfigError) as info:
        from_dict(raw, base_dir=ROOT)
    assert "min" in str(info.value.path)


@given(
    scores=st.lists(st.integers(1, 5), min_size=3, max_size=3),
    threshold=st.sampled_from([2.0, 3.0, 3.5, 4.0]),
)
def test_kept_exactly_when_every_criterion_meets_its_floor(
    scores: list[int], threshold: float
) -> None:
    rb = rubric_from({"criteria": CRITERIA, "scale": SCALE, "threshold": threshold})
    named = dict(zip(["relevance", "correctness", "clarity"], map(float, scores), strict=True))
    j = Judgement("m", named, rb.combine(named), "")
    _, ok, _ = panel_verdict([j], rb)
    floors = {"relevance": threshold, "correctness": threshold, "clarity": 2.0}
    assert ok == (all(named[n] >= f for n, f in floors.items()) and j.score >= threshold)


def test_a_panel_checks_each_criterion_across_its_judges() -> None:
    rb = rubric_from({"criteria": CRITERIA[:2], "scale": SCALE, "threshold": 3})
    a = Judgement("a", {"relevance": 5.0, "correctness": 2.0}, 3.5, "")
    b = Judgement("b", {"relevance": 5.0, "correctness": 3.0}, 4.0, "")
    score, ok, _ = panel_verdict([a, b], rb, "mean")
    assert score == 3.75 and not ok  # correctness averages 2.5 across the panel
    _, ok_min, _ = panel_verdict([a, b], rb, "max")
    assert ok_min  # the panel's best correctness, 3, meets 3
