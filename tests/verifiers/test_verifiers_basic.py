"""The first verifiers: JSON Schema, rules (required / length / regex / allowed / range) and
exact duplicates. A bad record gets a verdict with a short reason, never an exception."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth import registry
from synth.chain import Chain, Named, Verdict
from synth.context import Context
from synth.errors import ConfigError
from synth.records import Record, write_jsonl
from synth.verifiers.duplicate import DigestSet

ROOT = Path(__file__).resolve().parents[2]


def make(name: str, **config: Any) -> Any:
    return registry.lookup("verifier", name).factory(**config)


def verdict(fn: Any, data: dict[str, Any], ctx: Context | None = None) -> Verdict:
    result: Verdict = asyncio.run(fn(Record("r", data), ctx or Context(seed=0, base_dir=ROOT)))
    return result


# -- json_schema --------------------------------------------------------------------------

SCHEMA = {
    "type": "object",
    "required": ["name", "age"],
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
}


def test_json_schema_inline() -> None:
    check = make("json_schema", schema=SCHEMA)
    assert verdict(check, {"name": "a", "age": 3}).ok
    bad = verdict(check, {"name": 5, "age": -1})
    assert not bad.ok and bad.reason == "schema_mismatch"
    assert "$.age" in bad.detail and "$.name" in bad.detail


def test_json_schema_from_file_and_template(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"type": "object", "required": ["x"]}')
    (tmp_path / "s.yaml").write_text("type: object\nrequired: [y]\n")
    ctx = Context(seed=0, base_dir=tmp_path)
    assert not verdict(make("json_schema", schema_file="s.json"), {"y": 1}, ctx).ok
    assert verdict(make("json_schema", schema_file="s.yaml"), {"y": 1}, ctx).ok
    card = make("json_schema", template="card-transactions")
    bad = verdict(card, {"amount": -3})
    assert bad.reason == "schema_mismatch" and "more" in bad.detail


def test_json_schema_config_errors() -> None:
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        make("json_schema", schema={"type": "strin"})
    with pytest.raises(ConfigError, match="exactly one"):
        make("json_schema", schema=SCHEMA, template="card-transactions")


# -- rules --------------------------------------------------------------------------------

RULES = {
    "required": ["title", "meta.source"],
    "fields": {
        "title": {"type": "string", "min_length": 5, "max_length": 20, "pattern": "^[A-Z]"},
        "body": {"min_words": 3, "max_words": 6},
        "kind": {"allowed": ["a", "b"]},
        "score": {"minimum": 0, "maximum": 1},
        "address.city": {"min_length": 2},
        "tags": {"max_length": 2},
    },
}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({}, ""),
        ({"title": None}, "missing_field"),
        ({"title": 7}, "wrong_type"),
        ({"title": "Tiny"}, "too_short"),
        ({"title": "Far too long for this title"}, "too_long"),
        ({"title": "lowercase"}, "pattern_mismatch"),
        ({"body": "two words"}, "too_short"),
        ({"body": "one two three four five six seven"}, "too_long"),
        ({"kind": "c"}, "not_allowed"),
        ({"score": 1.5}, "out_of_range"),
        ({"score": "high"}, "wrong_type"),
        ({"address": {"city": "X"}}, "too_short"),
        ({"tags": [1, 2, 3]}, "too_long"),
        ({"kind": None, "score": None}, ""),  # optional fields may be null
    ],
)
def test_rules_reasons(change: dict[str, Any], reason: str) -> None:
    data = {
        "title": "Hello there",
        "body": "three short words",
        "kind": "a",
        "score": 0.5,
        "address": {"city": "Paris"},
        "tags": [1],
        **change,
    }
    check = make("rules", **RULES)
    v = asyncio.run(check(Record("r", data, {"source": "real"}), Context(seed=0)))
    assert v.ok == (reason == "") and v.reason == reason, v
    if reason:
        assert v.detail
    if data["title"] is not None:
        missing = asyncio.run(check(Record("r", data, {}), Context(seed=0)))
        assert missing.reason == "missing_field" and missing.detail == "meta.source is absent"


def test_single_purpose_rule_verifiers() -> None:
    assert verdict(make("required", fields=["a", "b"]), {"a": 1}).reason == "missing_field"
    assert verdict(make("length", field="t", min=3), {"t": "ab"}).reason == "too_short"
    assert (
        verdict(make("length", field="t", max=2, unit="words"), {"t": "a b c"}).reason == "too_long"
    )
    cur = make("regex", field="currency", pattern="^[A-Z]{3}$")
    assert verdict(cur, {"currency": "USD"}).ok
    assert verdict(cur, {"currency": "usd"}).reason == "pattern_mismatch"
    with pytest.raises(ConfigError) as info:
        make("regex", field="x", pattern="([a-z]")
    assert "regular expression" in info.value.message


# -- exact_duplicate ----------------------------------------------------------------------


def test_first_copy_wins_after_normalization() -> None:
    check = make("exact_duplicate", fields=["subject", "body"])
    ctx = Context(seed=0)
    a = {"subject": "Refund  please", "body": "Order 12", "id": 1}
    b = {"subject": "refund please ", "body": "ORDER 12", "id": 2}
    c = {"subject": "refund please", "body": "Order 13", "id": 3}
    assert verdict(check, a, ctx).ok
    dup = verdict(check, b, ctx)
    assert not dup.ok and dup.reason == "duplicate" and "subject, body" in dup.detail
    assert verdict(check, c, ctx).ok
    strict = make("exact_duplicate", normalize=False)
    assert verdict(strict, a, ctx).ok and verdict(strict, b, ctx).ok
    assert not verdict(strict, dict(a), ctx).ok


def test_state_is_per_instance_and_primed_on_resume(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "data.jsonl", [Record("x", {"t": "kept before the crash"})])
    ctx = Context(seed=0, run_dir=tmp_path)
    resumed = make("exact_duplicate")
    assert verdict(resumed, {"t": "Kept before the crash"}, ctx).reason == "duplicate"
    fresh = make("exact_duplicate")  # a new run instantiates a new verifier
    assert verdict(fresh, {"t": "kept before the crash"}, Context(seed=0)).ok


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=3000))
def test_digest_set_behaves_like_a_set(values: list[int]) -> None:
    ds, ref = DigestSet(capacity=8), set()
    for v in values:
        key = v or 1
        assert ds.add(v) == (key not in ref)
        ref.add(key)
    assert len(ds) == len(ref)


def test_verdicts_land_in_the_chain() -> None:
    chain = Chain(
        (
            Named("schema", make("json_schema", schema=SCHEMA)),
            Named("dup", make("exact_duplicate")),
        )
    )
    ctx = Context(seed=0)
    kept, ok = asyncio.run(chain.check(Record("a", {"name": "x", "age": 1}), ctx))
    _, again = asyncio.run(chain.check(Record("b", {"name": "x", "age": 1}), ctx))
    _, bad = asyncio.run(chain.check(Record("c", {"name": "x"}), ctx))
    assert ok.ok and again.reason == "duplicate" and bad.reason == "schema_mismatch"
    assert [v["verifier"] for v in kept.meta["verdicts"]] == ["schema", "dup"]
    assert ctx.stats["rejected_duplicate"] == 1 and ctx.stats["rejected_schema_mismatch"] == 1
