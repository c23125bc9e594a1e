"""`faithful`: a summary (answer, paraphrase) may not invent numbers, names or content
the source does not have. The examples are the embedded model's real summaries that the
demo kept before this verifier existed."""

from __future__ import annotations

import asyncio
import string
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from text_fixtures import ROOT, check, make_ctx

from synth.chain import Verdict
from synth.errors import ConfigError
from synth.records import Record
from synth.runner.recipe import from_dict, load
from synth.verifiers.faithful import faithful, names_in, number_values

DOORBELL = {
    "product": "Lumen Video Doorbell",
    "subject": "Lumen Video Doorbell won't turn on",
    "body": "Hi there,\nThe Lumen Video Doorbell shows no lights at all and doesn't respond to "
    "the power button. I'm on the latest version of the app. Can you send me a replacement "
    "unit?\n\nThanks for your help!",
}
CHARGE = {
    "product": "Aurora Smart Thermostat",
    "subject": "Unexpected charge of $176.78 on my card",
    "body": "Hi Christine here.\nThere is a $176.78 payment to you dated two days ago and I "
    "haven't ordered anything recently. Can you tell me what this charge is for?",
}


def demo_verifier() -> Any:
    """The `faithful` verifier exactly as recipes/demo.yaml configures it."""
    recipe = load(ROOT / "recipes" / "demo.yaml")
    [spec] = [s for s in recipe.chain if s.use == "faithful"]
    return spec.build()


def verdict(fn: Any, data: dict[str, Any]) -> Verdict:
    return asyncio.run(fn(Record("r", data), make_ctx()))


def test_the_demo_rejects_the_summaries_it_used_to_keep() -> None:
    fn = demo_verifier()
    helpful = "The customer addressed the issue with a product and sent a replacement unit, "
    helpful += "which is a great example of how a helpful AI can make a positive impact."
    v = verdict(fn, {**DOORBELL, "summary": helpful})
    assert not v.ok and v.reason == "invented_name" and "AI" in v.detail
    policy = "The customer has a $176.78 payment to order a product, and the payment is a "
    policy += "standard 24-hour payment with a 15-day return policy."
    v = verdict(fn, {**CHARGE, "summary": policy})
    assert not v.ok and v.detail == "invented_number: 24-hour, 15-day"


def test_the_demo_keeps_a_summary_in_the_tickets_words() -> None:
    fn = demo_verifier()
    good = "The customer says the Lumen Video Doorbell shows no lights and asks for a "
    good += "replacement unit."
    assert verdict(fn, {**DOORBELL, "summary": good}).ok
    charge = "The customer asks what the $176.78 charge on their card is for."
    assert verdict(fn, {**CHARGE, "summary": charge}).ok


def test_ungrounded_words_are_named() -> None:
    fn = faithful(field="s", source=["body"], min_support=0.8)
    v = verdict(fn, {"body": "My router drops the connection.", "s": "Router drops helpful AI"})
    assert v.reason == "invented_name"
    v = verdict(fn, {"body": "My router drops the connection.", "s": "router has positive impact"})
    assert not v.ok and v.reason == "ungrounded"
    assert v.detail.startswith("ungrounded: positive impact;")


def test_numbers_match_however_they_are_written() -> None:
    assert number_values("$1,299.00 and 05") == number_values("1299 and 5")
    fn = faithful(field="s", source="body", min_support=0)
    body = {"body": "I ordered it 10 days ago and paid $1,299.00 for order NB-0791149."}
    assert verdict(fn, {**body, "s": "paid 1299 after a 10-day wait for NB-0791149"}).ok
    v = verdict(fn, {**body, "s": "paid $1,299.50 for NB-0791148"})
    assert v.detail == "invented_number: $1,299.50, NB-0791148"


def test_names_are_capitalised_runs_not_sentence_openers() -> None:
    text = "The Nimbus X2 Router is late. Refunds take long; ask Lisa Day, not I or the AI."
    assert names_in(text) == ["Nimbus X2 Router", "Lisa Day", "AI"]


def test_allow_and_banned() -> None:
    fn = faithful(
        field="s",
        source="body",
        allow=["customer", "request(s|ed)?", "Support Team"],
        banned=["great example"],
        min_support=1.0,
    )
    body = {"body": "Please send a new label."}
    assert verdict(fn, {**body, "s": "The customer requested a new label from Support Team."}).ok
    v = verdict(fn, {**body, "s": "A great example: the customer requests a label."})
    assert v.reason == "banned_phrase" and v.detail == "banned_phrase: great example"


def test_min_words_rejects_a_summary_that_says_nothing() -> None:
    fn = faithful(field="s", source="body", allow=["customer", "product", "problem"], min_words=2)
    body = {"body": "My Nimbus X2 Router drops the connection every hour."}
    v = verdict(fn, {**body, "s": "The customer has a problem with a product."})
    assert v.reason == "too_vague" and v.detail == "0 content words from the source (min 2)"
    assert verdict(fn, {**body, "s": "The customer's router drops the connection."}).ok


def test_a_bad_record_is_a_verdict_never_an_exception() -> None:
    fn = faithful(field="summary", source=["subject", "body"])
    assert verdict(fn, {"summary": "x"}).reason == "missing_source"
    assert verdict(fn, {"summary": None, "body": "b"}).reason == "missing_field"
    assert verdict(fn, {"summary": {"a": 1}, "body": "b"}).reason == "missing_field"
    assert verdict(fn, {"summary": "42.", "body": 42}).ok  # a number is text enough


def test_a_bad_allow_pattern_is_a_config_error_at_load() -> None:
    raw = {
        "steps": [{"use": "faker", "template": "support-tickets"}],
        "verify": [{"use": "faithful", "field": "subject", "source": "body", "allow": ["(x"]}],
    }
    with pytest.raises(ConfigError) as info:
        from_dict(raw, base_dir=ROOT)
    assert info.value.path == "$.allow[0]" and "escape" in (info.value.fix or "")


def test_in_a_chain_the_reason_is_counted_and_the_detail_names_the_token() -> None:
    fn = faithful(field="s", source="body")
    ctx = make_ctx()
    rec, v = check([("faithful", fn)], Record("r", {"body": "Order 12.", "s": "Order 13."}), ctx)
    assert ctx.stats["rejected_invented_number"] == 1
    assert rec.meta["verdicts"][-1]["detail"] == "invented_number: 13"


# --------------------------------------------------------------------------- properties

LOWER = st.text(string.ascii_lowercase, min_size=3, max_size=9).filter(
    lambda w: w not in {"the", "and", "for", "was", "are", "has", "had", "not", "but"}
)
NUMBER = st.one_of(
    st.integers(0, 99999).map(str),
    st.decimals(0, 9999, places=2, allow_nan=False, allow_infinity=False).map(lambda d: f"${d}"),
)
NAME = st.lists(
    st.text(string.ascii_lowercase, min_size=3, max_size=8).map(str.capitalize),
    min_size=1,
    max_size=3,
).map(" ".join)
SOURCE = st.lists(st.one_of(LOWER, NUMBER, NAME), min_size=3, max_size=25)


@given(source=SOURCE, data=st.data())
def test_an_output_made_of_source_words_and_numbers_passes(source: list[str], data: Any) -> None:
    picked = data.draw(st.lists(st.sampled_from(source), min_size=1, max_size=12))
    output = "so " + " and ".join(picked) + "."
    v = verdict(
        faithful(field="s", source="body", min_support=1.0), {"body": " ".join(source), "s": output}
    )
    assert v.ok, v.detail


@given(source=SOURCE, data=st.data())
def test_a_number_not_in_the_source_fails_and_is_named(source: list[str], data: Any) -> None:
    have = number_values(" ".join(source))
    extra = data.draw(NUMBER.filter(lambda n: not number_values(n) <= have))
    words = data.draw(st.lists(st.sampled_from(source), min_size=1, max_size=8))
    at = data.draw(st.integers(0, len(words)))
    output = " ".join(["so", *words[:at], "for", extra, "then", *words[at:]])
    v = verdict(
        faithful(field="s", source="body", min_support=0), {"body": " ".join(source), "s": output}
    )
    assert not v.ok and v.reason == "invented_number"
    assert extra in v.detail.removeprefix("invented_number: ").split(", ")


@given(source=SOURCE, name=NAME, data=st.data())
def test_a_name_not_in_the_source_fails_and_is_named(
    source: list[str], name: str, data: Any
) -> None:
    # a capitalised pronoun opening a clause ("She") is not a name
    assume(name.lower() not in {"she", "he", "it", "they", "we", "you", "i", "her", "his"})
    known = {w.lower() for part in source for w in part.split()}
    if all(w.lower() in known for w in name.split()):
        name = name + " Zqxv"  # make sure at least one word of the name is new
    words = data.draw(st.lists(st.sampled_from(source), min_size=1, max_size=8))
    at = data.draw(st.integers(0, len(words)))
    output = " ".join(["so", *words[:at], "with", name, "then", *words[at:]])
    v = verdict(
        faithful(field="s", source="body", min_support=0), {"body": " ".join(source), "s": output}
    )
    assert not v.ok and v.reason == "invented_name"
    assert name in v.detail
