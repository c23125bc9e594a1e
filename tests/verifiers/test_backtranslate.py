"""Back-translation verifier: round trips scored with chrF against thresholds."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from text_fixtures import check, make_ctx

from synth.errors import LLMResponseError
from synth.records import Record
from synth.testing import ScriptedLLM
from synth.verifiers.backtranslate import backtranslate, chrf

TEXT = "My order arrived with a cracked screen. Please send a replacement before Friday."


def direction(messages: list[dict[str, str]]) -> tuple[str, str]:
    m = re.search(r"from (\w+) into (\w+)", messages[0]["content"])
    assert m, messages[0]["content"]
    return m.group(1), m.group(2)


def faithful(messages: list[dict[str, str]], **_: object) -> str:
    """Translates by tagging words and back by untagging: a perfect round trip."""
    src, dst = direction(messages)
    text = messages[-1]["content"]
    if dst != "English":
        return " ".join(f"{dst}:{w}" for w in text.split())
    return " ".join(w.split(":", 1)[1] for w in text.split())


def lossy(messages: list[dict[str, str]], **_: object) -> str:
    """Loses every other word on the way there: meaning does not survive."""
    src, dst = direction(messages)
    words = messages[-1]["content"].split()
    if dst == "French":
        return " ".join(f"fr:{w}" for w in words[::2])
    return " ".join(w.removeprefix("fr:") for w in words)


def rec(**data: str) -> Record:
    return Record("r", data, {})


def test_chrf_is_the_standard_metric() -> None:
    assert chrf(TEXT, TEXT) == pytest.approx(100.0)
    assert chrf("completely unrelated words here", TEXT) < 20
    assert 30 < chrf(TEXT.replace("cracked", "broken"), TEXT) < 100


def test_a_faithful_round_trip_passes() -> None:
    llm = ScriptedLLM(faithful)
    record, verdict = check([("bt", backtranslate(field="text"))], rec(text=TEXT), make_ctx(llm))
    assert verdict.ok
    assert record.meta["verdicts"][0]["score"] == pytest.approx(100.0)
    assert [direction(c.messages) for c in llm.calls] == [
        ("English", "French"),
        ("French", "English"),
    ]
    assert all(c.params["template_hash"] for c in llm.calls)


def test_a_lossy_round_trip_is_rejected_with_its_score() -> None:
    ctx = make_ctx(ScriptedLLM(lossy))
    record, verdict = check(
        [("bt", backtranslate(field="text", threshold=60))], rec(text=TEXT), ctx
    )
    assert (verdict.ok, verdict.reason) == (False, "roundtrip_low")
    score = record.meta["verdicts"][0]["score"]
    assert score < 60 and "chrF" in verdict.detail and "min 60" in verdict.detail
    assert ctx.stats["backtranslate_calls"] == 2


@settings(max_examples=20, deadline=None)
@given(st.floats(min_value=0, max_value=100))
def test_the_threshold_is_where_the_verdict_flips(threshold: float) -> None:
    ctx = make_ctx(ScriptedLLM(lossy))
    v = asyncio.run(backtranslate(field="text", threshold=threshold)(rec(text=TEXT), ctx))
    assert v.score is not None and v.ok == (v.score >= threshold)


def test_instruction_mode_regenerates_the_instruction_from_the_response() -> None:
    instruction = "Explain how to boil an egg so the yolk stays soft."
    response = "Bring water to a boil, lower the egg in, cook six minutes, then cool it."
    close = ScriptedLLM(["Explain how to boil an egg with a soft yolk."])
    ctx = make_ctx(close)
    _, ok = check(
        [("bt", backtranslate(mode="instruction"))],
        rec(instruction=instruction, response=response),
        ctx,
    )
    assert ok.ok
    assert response in close.calls[0].messages[-1]["content"]
    unrelated = make_ctx(ScriptedLLM(["Write a poem about the ocean at night."]))
    _, bad = check(
        [("bt", backtranslate(mode="instruction", threshold=30))],
        rec(instruction=instruction, response=response),
        unrelated,
    )
    assert (bad.ok, bad.reason) == (False, "roundtrip_low")


def test_missing_fields_and_model_failures_are_rejections() -> None:
    ctx = make_ctx(ScriptedLLM([LLMResponseError("nope")]))
    _, missing = check([("bt", backtranslate(field="text"))], rec(other="x"), ctx)
    assert missing.reason == "missing_field"
    _, failed = check([("bt", backtranslate(field="text"))], rec(text=TEXT), ctx)
    assert failed.reason == "backtranslate_error"


def test_reference_can_be_the_original_of_a_paraphrase() -> None:
    para = Record("p", {"body": TEXT.replace("cracked", "broken")}, {"originals": {"body": TEXT}})
    llm = ScriptedLLM(faithful)
    verifier = backtranslate(field="data.body", reference="meta.originals.body", pivot="German")
    verdict = asyncio.run(verifier(para, make_ctx(llm)))
    assert direction(llm.calls[0].messages) == ("English", "German")
    assert verdict.score == pytest.approx(chrf(para.data["body"], TEXT), abs=0.01)
