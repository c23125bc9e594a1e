"""Perturbation: labels are never touched, rates hold statistically, jitter and date shifts
stay in bounds, every change is in the lineage, and the same seed gives the same noise."""

from __future__ import annotations

import asyncio
import datetime
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth import registry
from synth.context import Context
from synth.errors import ConfigError
from synth.records import Record, child_id
from synth.streams import aiter_of
from synth.text import noise

TEXT = "The quick brown fox jumps over the lazy dog near Walmart Supercenter 42"


def make(**config: Any) -> Any:
    return registry.lookup("step", "perturb").factory(**config)


def run(step_fn: Any, records: list[Record], seed: int = 1, **ctx: Any) -> list[Record]:
    async def go() -> list[Record]:
        return [r async for r in step_fn(aiter_of(records), Context(seed=seed, **ctx))]

    return asyncio.run(go())


def recs(n: int, **data: Any) -> list[Record]:
    return [Record(f"r{i}", {**data, "i": i}, {"index": i}) for i in range(n)]


# -- labels -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(
    label=json_values,
    other=json_values,
    text=st.text(max_size=40),
    seed=st.integers(0, 2**32),
)
def test_labels_are_never_touched(label: Any, other: Any, text: str, seed: int) -> None:
    every_op = {
        "typo": 0.3, "drop": 0.2, "swap": 0.2, "case": 0.5, "whitespace": 0.5,
        "token_dropout": 0.3, "jitter": 0.5, "shift_days": 3, "shuffle": 1.0,
        "nullify": 0.3, "drop_field": 0.3,
    }  # fmt: skip
    step_fn = make(
        fields={"text": every_op, "other": every_op, "missing": every_op},
        labels=["is_fraud", "meta_label"],
        k=3,
    )
    parent = Record("p", {"text": text, "other": other, "is_fraud": label, "meta_label": label})
    snapshot = json.dumps(parent.data, sort_keys=True)
    for child in run(step_fn, [parent], seed=seed):
        assert json.dumps(child.data["is_fraud"]) == json.dumps(label)
        assert json.dumps(child.data["meta_label"]) == json.dumps(label)
        assert all(
            c["field"] not in ("is_fraud", "meta_label") for c in child.meta["perturbations"]
        )
    assert json.dumps(parent.data, sort_keys=True) == snapshot  # the input is never modified


@pytest.mark.parametrize("field", ["is_fraud", "is_fraud.score", "meta"])
def test_a_label_listed_in_fields_is_a_config_error(field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(fields={field: {"typo": 0.1}}, labels=["is_fraud", "meta.label"])
    assert info.value.path == f"$.fields.{field}" and "label" in info.value.message


def test_bad_configs() -> None:
    with pytest.raises(ConfigError, match="more than 1"):
        make(fields={"a": {"typo": 0.6, "drop": 0.6}})
    with pytest.raises(ConfigError, match="unknown perturbation"):
        make(fields={"a": {"typos": 0.1}})


# -- rates --------------------------------------------------------------------------------


def changes(out: list[Record], op: str) -> int:
    return sum(1 for r in out for c in r.meta["perturbations"] if c["op"] == op)


@pytest.mark.parametrize(
    "op, rate, units",
    [
        ("typo", 0.05, sum(c in noise.QWERTY for c in TEXT)),  # per eligible character
        ("drop", 0.03, len(TEXT)),
        ("case", 0.2, len(TEXT.split())),  # per word
        ("token_dropout", 0.1, len(TEXT.split())),
        ("whitespace", 0.1, len(TEXT.split()) - 1),  # per gap
    ],
)
def test_observed_text_rates_match_configured_rates(op: str, rate: float, units: int) -> None:
    n = 800
    out = run(make(fields={"text": {op: rate}}), recs(n, text=TEXT))
    observed = changes(out, op) / (n * units)
    expected = rate
    if op == "case":  # words with only one casing (like "42") cannot change
        expected = rate * sum(w.lower() != w.upper() for w in TEXT.split()) / units
    assert abs(observed - expected) < 0.2 * expected + 0.002, (observed, expected)


@pytest.mark.parametrize("op", ["nullify", "drop_field", "shuffle"])
def test_observed_record_rates_match_configured_rates(op: str) -> None:
    n, rate = 3000, 0.3
    out = run(make(fields={"xs": {op: rate}}), recs(n, xs=[1, 2, 3, 4]))
    observed = changes(out, op) / n
    assert abs(observed - rate) < 0.04
    if op == "nullify":
        assert sum(r.data["xs"] is None for r in out) == changes(out, op)
    if op == "drop_field":
        assert sum("xs" not in r.data for r in out) == changes(out, op)


def test_swap_and_typos_are_keyboard_plausible() -> None:
    out = run(make(fields={"text": {"typo": 0.2, "swap": 0.1}}), recs(200, text=TEXT))
    for r in out:
        for c in r.meta["perturbations"]:
            if c["op"] == "typo":
                assert c["after"] in noise.QWERTY[c["before"]]
                if c["after"].isalpha():
                    assert c["after"].isupper() == c["before"].isupper()
            elif c["op"] == "swap":
                assert c["after"] == c["before"][::-1]
    assert noise.QWERTY["g"] == "bfhtvy"  # neighbours of g on a QWERTY keyboard


# -- bounds -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.integers(-(10**9), 10**9),
        st.floats(-1e9, 1e9, allow_nan=False),
        st.decimals(-10000, 10000, places=2, allow_nan=False).map(lambda d: str(d)),
    ),
    bound=st.floats(0.001, 1.0),
    seed=st.integers(0, 2**32),
)
def test_numeric_jitter_stays_within_the_bound(value: Any, bound: float, seed: int) -> None:
    new, done = noise.jitter(value, random.Random(seed), bound)
    assert type(new) is type(value)
    x, y = float(value), float(new)
    assert abs(y - x) <= bound * abs(x) + 1e-9 * max(1.0, abs(x))
    if isinstance(value, str) and "." in value:
        assert len(new.split(".")[1]) == len(value.split(".")[1])  # decimals kept
    assert done == [{"op": "jitter", "before": value, "after": new}]


@settings(max_examples=200, deadline=None)
@given(
    when=st.datetimes(datetime.datetime(2000, 1, 1), datetime.datetime(2030, 1, 1)),
    days=st.integers(1, 30),
    form=st.sampled_from(["date", "iso", "isoz", "space", "obj"]),
    seed=st.integers(0, 2**32),
)
def test_date_shift_stays_within_days_and_keeps_the_form(
    when: datetime.datetime, days: int, form: str, seed: int
) -> None:
    when = when.replace(microsecond=0)
    value: Any = {
        "date": when.date().isoformat(),
        "iso": when.isoformat(),
        "isoz": when.isoformat() + "Z",
        "space": when.isoformat(sep=" "),
        "obj": when,
    }[form]
    new, done = noise.shift_date(value, random.Random(seed), days)
    assert done and done[0]["op"] == "date_shift" and new != value
    if form == "obj":
        moved = new
    elif form == "date":
        assert len(new) == 10
        moved = datetime.datetime.fromisoformat(new)
        when = datetime.datetime.combine(when.date(), datetime.time())
    else:
        assert len(new) == len(value) and new[10] == value[10]
        assert new.endswith("Z") == value.endswith("Z")
        moved = datetime.datetime.fromisoformat(new.rstrip("Z"))
    assert abs((moved - when).total_seconds()) <= days * 86400


# -- lineage, determinism, files ----------------------------------------------------------


def test_lineage_ids_and_determinism() -> None:
    fields = {"text": {"typo": 0.05, "case": 0.1}, "amount": {"jitter": 0.1}}
    parents = [
        Record(f"p{i}", {"text": TEXT, "amount": 100.0, "y": 1}, {"index": i}) for i in range(20)
    ]
    out = run(make(fields=fields, labels=["y"], k=2), parents, seed=3)
    assert [r.id for r in out] == [child_id(p, "perturb", j) for p in parents for j in range(2)]
    assert all(r.meta["parents"] == [f"p{r.meta['index']}"] for r in out)
    for r in out:
        amounts = [c for c in r.meta["perturbations"] if c["field"] == "amount"]
        assert amounts == [
            {"field": "amount", "op": "jitter", "before": 100.0, "after": r.data["amount"]}
        ]
    again = run(make(fields=fields, labels=["y"], k=2), parents, seed=3)
    assert [r.to_json() for r in again] == [r.to_json() for r in out]
    reversed_run = run(make(fields=fields, labels=["y"], k=2), parents[::-1], seed=3)
    assert sorted(r.to_json() for r in reversed_run) == sorted(r.to_json() for r in out)
    other = run(make(fields=fields, labels=["y"], k=2), parents, seed=4)
    assert [r.data for r in other] != [r.data for r in out]


def test_nested_fields_lists_and_keep_original() -> None:
    parent = Record("p", {"address": {"city": "Springfield", "zip": "12345"}, "tags": [1, 2, 3]})
    step_fn = make(
        fields={"address.city": {"nullify": 1.0}, "tags": {"shuffle": 1.0}}, keep_original=True
    )
    original, child = run(step_fn, [parent])
    assert original is parent and parent.data["address"]["city"] == "Springfield"
    assert child.data["address"] == {"city": None, "zip": "12345"}
    assert sorted(child.data["tags"]) == [1, 2, 3]
    assert [c["op"] for c in child.meta["perturbations"]] == ["nullify", "shuffle"]


def test_perturb_reads_a_file_itself(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"name": "Alice Smith", "n": i}) + "\n" for i in range(5)))
    out = run(make(path="in.jsonl", fields={"name": {"case": 1.0}}), [], base_dir=tmp_path)
    assert len(out) == 5 and all(r.data["name"] != "Alice Smith" for r in out)
    assert [r.meta["index"] for r in out] == list(range(5))
