"""Streaming per-field statistics and a cheap diversity figure, in bounded memory.

Used by `synth inspect` (any JSONL of records or plain objects) and by the manifest,
which reports diversity over a sample of the kept records. Distinct-value sets stop
growing at `cap` so a million-row file cannot exhaust memory; counts past the cap are
reported as lower bounds. Distinct-2 is measured on `text_fields` when given (the fields
the model wrote, see `synth.text.fields`), else on every text field."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from synth.text.fields import text_for

TOP_K = 5
LOW_CARDINALITY = 20


@dataclass(slots=True)
class _Num:
    n: int = 0
    total: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf

    def add(self, x: float) -> None:
        self.n += 1
        self.total += x
        if x < self.lo:
            self.lo = x
        if x > self.hi:
            self.hi = x

    def summary(self) -> dict[str, float] | None:
        if not self.n:
            return None
        return {"min": self.lo, "max": self.hi, "mean": round(self.total / self.n, 4)}


@dataclass(slots=True)
class FieldStats:
    present: int = 0
    nulls: int = 0
    types: Counter[str] = field(default_factory=Counter)
    distinct: set[int] = field(default_factory=set)
    capped: bool = False
    top: Counter[tuple[type, Any]] = field(default_factory=Counter)
    numbers: _Num = field(default_factory=_Num)
    lengths: _Num = field(default_factory=_Num)  # characters of strings, items of lists

    def add(self, value: Any, cap: int) -> None:
        self.present += 1
        kind = type(value)
        self.types[_TYPES.get(kind, "object")] += 1
        if value is None:
            self.nulls += 1
            return
        # Scalars are their own key (typed, so 1 and True stay apart); containers are keyed
        # by canonical JSON. The built-in hash is enough: counts never leave the process.
        key = (kind, value) if kind in _SCALAR else (kind, _canon(value))
        if not self.capped:
            self.distinct.add(hash(key))
            self.capped = len(self.distinct) >= cap
        top = self.top
        if len(top) <= 1000:  # past that the field is not low-cardinality anyway
            top[key] += 1
        if kind is int or kind is float:
            self.numbers.add(value)
        elif kind is str or kind is list:
            self.lengths.add(len(value))

    def summary(self, records: int) -> dict[str, Any]:
        distinct = len(self.distinct)
        out: dict[str, Any] = {
            "type": "|".join(t for t, _ in self.types.most_common()),
            "null_rate": round((self.nulls + records - self.present) / records, 4)
            if records
            else 0.0,
            "distinct": f">={distinct}" if self.capped else distinct,
        }
        if (num := self.numbers.summary()) is not None:
            out["number"] = num
        if (lengths := self.lengths.summary()) is not None:
            out["length"] = lengths
        if not self.capped and distinct <= LOW_CARDINALITY and len(self.top) <= 1000:
            out["top"] = [[_plain(k), c] for k, c in self.top.most_common(TOP_K)]
        return out


@dataclass(slots=True)
class Profile:
    """Accumulates stats over a stream of JSON objects (records' `data`, or plain rows)."""

    cap: int = 100_000
    text_sample: int = 10_000
    text_fields: list[str] | None = None  # None: every text field
    records: int = 0
    duplicates: int = 0
    fields: dict[str, FieldStats] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set)
    _bigrams: set[int] = field(default_factory=set)
    _bigram_total: int = 0

    def add(self, obj: dict[str, Any]) -> None:
        self.records += 1
        h = hash(_canon(obj))
        if h in self._seen:
            self.duplicates += 1
        elif len(self._seen) < 10 * self.cap:
            self._seen.add(h)
        texts = self.records <= self.text_sample
        fields, cap = self.fields, self.cap
        for name, value in flatten(obj):
            stats = fields.get(name)
            if stats is None:
                stats = fields[name] = FieldStats()
            stats.add(value, cap)
            if texts and self.text_fields is None and type(value) is str and " " in value:
                self._add_text(value)
        if texts and self.text_fields is not None:
            self._add_text(text_for(obj, self.text_fields))

    def _add_text(self, text: str) -> None:
        words = text.split()
        if len(words) > 1:
            self._bigram_total += len(words) - 1
            self._bigrams.update(map(hash, zip(words, words[1:], strict=False)))

    def diversity(self) -> dict[str, Any]:
        """distinct values / values per field, and distinct-2 over text fields (the share of
        word bigrams that are unique; low values mean templated, repetitive text)."""
        out: dict[str, Any] = {
            "records": self.records,
            "duplicates": self.duplicates,
            "distinct_ratio": {
                name: round(len(f.distinct) / max(1, f.present - f.nulls), 4)
                for name, f in sorted(self.fields.items())
            },
        }
        if self._bigram_total:
            out["distinct_2"] = round(len(self._bigrams) / self._bigram_total, 4)
            out["distinct_2_sample"] = min(self.records, self.text_sample)
            if self.text_fields is not None:
                out["text_fields"] = list(self.text_fields)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "duplicates": self.duplicates,
            "fields": {name: f.summary(self.records) for name, f in sorted(self.fields.items())},
            **({"distinct_2": self.diversity()["distinct_2"]} if self._bigram_total else {}),
            "text_fields": self.text_fields or "all text fields",
        }


def profile(objs: Iterable[dict[str, Any]], **kw: Any) -> Profile:
    p = Profile(**kw)
    for obj in objs:
        p.add(obj)
    return p


def flatten(obj: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Nested objects become dotted fields (`address.city`); lists stay values."""
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if type(v) is dict and v:
            yield from flatten(v, name + ".")
        else:
            yield name, v


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _plain(key: tuple[type, Any]) -> Any:
    kind, value = key
    return value if kind in _SCALAR else json.loads(value)


_SCALAR = frozenset({str, int, float, bool})
_TYPES = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "list"}
