"""Instruction, preference and reward builders, end to end into their export formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from text_fixtures import check, make_ctx, run_step, take, text_of

from synth.curate.export import export
from synth.records import Record, record_id, write_jsonl
from synth.registry import lookup
from synth.testing import ScriptedLLM
from synth.verifiers.judge import make_pairwise


def step(name: str, **config: Any) -> Any:
    return lookup("step", name).factory(**config)


def writer(messages: list[dict[str, str]], **params: Any) -> str:
    """Fake model: writes requests for the instruction prompt, answers otherwise. The
    answer at temperature <= 0.5 is the good one."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if "questions and requests" in system:
        return f"Request: How do I {user.split(' about ', 1)[1].split('.')[0]}?"
    good = float(params.get("temperature", 0)) <= 0.5
    return f"A good, careful answer to: {user}" if good else "meh"


def judge_good(messages: list[dict[str, str]], **_: Any) -> dict[str, Any]:
    text = text_of(messages)
    start = text.rindex("<data>") + len("<data>")
    data = json.loads(text[start : text.index("</data>", start)])
    if "response_A" in data:
        return {"winner": "A" if "good" in data["response_A"] else "B", "reason": "clearer"}
    score = 5 if "good" in data["response"] else 2
    return {"relevance": score, "correctness": score, "clarity": score, "reason": "ok"}


def test_instructions_source_is_deterministic_and_resumable() -> None:
    topics = ["boiling eggs", "tying knots", "saving money"]
    llm = ScriptedLLM(writer)
    ctx = make_ctx(llm)
    out = take(step("instructions", topics=topics, response_temperature=0.2), ctx, 4)
    assert [r.id for r in out] == [record_id(ctx.recipe_hash, ctx.seed, i) for i in range(4)]
    assert all(r.data["instruction"].startswith("How do I ") for r in out)  # label removed
    assert all(r.data["response"].startswith("A good, careful answer") for r in out)
    assert all(r.meta["instruct"]["topic"] in topics for r in out)
    assert len(out[0].meta["llm_calls"]) == 2
    again = take(
        step("instructions", topics=topics, response_temperature=0.2),
        make_ctx(ScriptedLLM(writer), start_index=2),
        2,
    )
    assert [(r.id, r.data) for r in again] == [(r.id, r.data) for r in out[2:]]


def test_preference_pairs_are_ordered_by_a_swap_consistent_judge() -> None:
    prompts = [
        Record(f"p{i}", {"instruction": f"Explain topic {i}."}, {"index": i}) for i in range(2)
    ]
    llm = ScriptedLLM(
        lambda m, **p: judge_good(m) if "evaluator" in m[0]["content"] else writer(m, **p)
    )
    ctx = make_ctx(llm)
    # the low temperature sample is the good one, but list it second: the judge must flip
    pairs = run_step(step("preference", temperatures=[1.0, 0.2]), prompts, ctx)
    assert len(pairs) == 2 and ctx.stats["pairwise_consistent"] == 2
    for pair in pairs:
        assert pair.data["chosen"].startswith("A good") and pair.data["rejected"] == "meh"
        assert pair.meta["preference"]["verdicts"] == ["B", "A"]
    calls = len(llm.calls)
    _, verdict = check([("pairwise", make_pairwise())], pairs[0], ctx)
    assert verdict.ok and len(llm.calls) == calls  # the step's judgement is reused


def test_inconsistent_pairs_reach_rejects_with_their_reason() -> None:
    llm = ScriptedLLM(
        lambda m, **p: (
            {"winner": "A", "reason": "first"} if "evaluator" in m[0]["content"] else writer(m, **p)
        )
    )
    ctx = make_ctx(llm)
    [pair] = run_step(step("preference"), [Record("p", {"instruction": "Say hi."}, {})], ctx)
    assert pair.meta["preference"]["consistent"] is False
    rec, verdict = check([("pairwise", make_pairwise())], pair, ctx)
    assert verdict.reason == "pairwise_inconsistent" and "['A', 'A']" in verdict.detail


def test_pointwise_preference_keeps_only_a_clear_margin() -> None:
    llm = ScriptedLLM(
        lambda m, **p: judge_good(m) if "evaluator" in m[0]["content"] else writer(m, **p)
    )
    ctx = make_ctx(llm)
    prompts = [Record("p", {"instruction": "Explain tides."}, {})]
    [pair] = run_step(step("preference", judge="pointwise", temperatures=[1.0, 0.2]), prompts, ctx)
    assert pair.data["chosen"].startswith("A good") and pair.meta["preference"]["verdicts"] == [
        "5",
        "2",
    ]
    assert check([("pairwise", make_pairwise())], pair, ctx)[1].ok
    strict = step("preference", judge="pointwise", min_margin=4, temperatures=[1.0, 0.2])
    [tie] = run_step(strict, prompts, make_ctx(llm))
    assert check([("pairwise", make_pairwise())], tie, ctx)[1].reason == "preference_tie"


def test_reward_step_labels_pairs_and_exports(tmp_path: Path) -> None:
    rows = [
        Record("a", {"instruction": "Explain tides.", "response": "A good, careful answer."}, {}),
        Record("b", {"instruction": "Explain tides.", "response": "meh"}, {}),
    ]
    llm = ScriptedLLM(judge_good)
    out = run_step(step("reward", rubric="instruction-quality"), rows, make_ctx(llm))
    assert [r.data["score"] for r in out] == [5.0, 2.0]
    assert out[0].meta["judgements"][0]["scores"]["clarity"] == 5.0
    write_jsonl(tmp_path / "data.jsonl", out)
    export(tmp_path / "data.jsonl", "reward", tmp_path / "reward.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "reward.jsonl").read_text().splitlines()]
    assert lines == [
        {"prompt": "Explain tides.", "response": "A good, careful answer.", "score": 5.0},
        {"prompt": "Explain tides.", "response": "meh", "score": 2.0},
    ]


def test_respond_adds_a_response_and_lineage() -> None:
    rows = [Record("a", {"instruction": "Name a colour."}, {"llm_calls": [{"model": "x"}]})]
    [r] = run_step(step("respond", temperature=0.2), rows, make_ctx(ScriptedLLM(writer)))
    assert r.data["response"].startswith("A good") and len(r.meta["llm_calls"]) == 2


def test_a_record_an_earlier_step_failed_passes_every_builder_untouched() -> None:
    error = {"step": "prompt", "reason": "prompt_llm_unavailable", "detail": "HTTP 500"}
    failed = Record("f", {"instruction": "Name a colour.", "response": "red"}, {"error": error})
    builders = {"respond": {}, "preference": {}, "reward": {"rubric": "instruction-quality"}}
    for name, config in builders.items():
        llm = ScriptedLLM(writer)
        assert run_step(step(name, **config), [failed], make_ctx(llm)) == [failed], name
        assert llm.calls == [], name
    llm = ScriptedLLM(writer)
    assert run_step(step("paraphrase", fields=["instruction"]), [failed], make_ctx(llm)) == [failed]
    assert llm.calls == []
