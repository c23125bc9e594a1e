"""Rule verifiers: `rules` (several checks per field in one place) and the single-purpose
`required`, `length` and `regex`. Cheap and deterministic, so they go first in a chain.

    - use: rules
      required: [subject, body]
      fields:
        body: {min_length: 80, max_length: 4000, min_words: 15}
        priority: {allowed: [low, normal, high, urgent]}
        amount: {minimum: 0, maximum: 50000}
        currency: {pattern: "^[A-Z]{3}$"}

Field names are data fields, dotted for nested objects (`address.city`); `meta.x` reads
lineage. A null or absent field fails only `required`; the other rules skip it.
Reasons: missing_field, wrong_type, not_allowed, too_short, too_long, pattern_mismatch,
out_of_range.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.errors import ConfigError
from synth.records import Record
from synth.registry import verifier

MISSING = object()
Check = Callable[[Record], Verdict | None]

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}
_LEN = {"type": "integer", "minimum": 0}
FIELD_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": list(_TYPES)},
        "allowed": {"type": "array", "minItems": 1},
        "min_length": _LEN,
        "max_length": _LEN,
        "min_words": _LEN,
        "max_words": _LEN,
        "pattern": {"type": "string", "description": "A Python regex searched in the value."},
        "minimum": {"type": "number"},
        "maximum": {"type": "number"},
    },
}
_FIELD_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}


def lookup(record: Record, path: str) -> Any:
    """The value at a dotted path of the data (or of meta with `meta.`), or MISSING."""
    node: Any = record.data
    parts = path.split(".")
    if parts[0] == "meta" and len(parts) > 1:
        node, parts = record.meta, parts[1:]
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def required_check(fields: list[str]) -> Check:
    def check(record: Record) -> Verdict | None:
        for f in fields:
            v = lookup(record, f)
            if v is MISSING or v is None:
                state = "absent" if v is MISSING else "null"
                return Verdict(False, 0.0, "missing_field", f"{f} is {state}")
        return None

    return check


def field_checks(name: str, rules: dict[str, Any], path: str) -> list[Check]:
    """One closure per rule, compiled now (regexes included) so a record costs little."""
    checks: list[Check] = []

    def add(test: Callable[[Any], Verdict | None]) -> None:
        def check(record: Record) -> Verdict | None:
            v = lookup(record, name)
            return None if v is MISSING or v is None else test(v)

        checks.append(check)

    if "type" in rules:
        want, is_type = rules["type"], _TYPES[rules["type"]]
        add(lambda v: None if is_type(v) else _fail("wrong_type", f"{name}: not a {want}", v))
    if "allowed" in rules:
        allowed = list(rules["allowed"])
        shown = ", ".join(map(repr, allowed[:8])) + (" ..." if len(allowed) > 8 else "")
        add(
            lambda v: (
                None if v in allowed else _fail("not_allowed", f"{name}: not one of {shown}", v)
            )
        )
    lo, hi = rules.get("min_length"), rules.get("max_length")
    if lo is not None or hi is not None:
        add(lambda v: _length(name, v, lo, hi, "characters", len))
    lo_w, hi_w = rules.get("min_words"), rules.get("max_words")
    if lo_w is not None or hi_w is not None:
        add(lambda v: _length(name, v, lo_w, hi_w, "words", lambda s: len(s.split())))
    if "pattern" in rules:
        rx = compile_pattern(rules["pattern"], f"{path}.pattern")
        add(lambda v: _pattern(name, v, rx))
    lo_n, hi_n = rules.get("minimum"), rules.get("maximum")
    if lo_n is not None or hi_n is not None:
        add(lambda v: _range(name, v, lo_n, hi_n))
    return checks


def compile_pattern(pattern: str, path: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"invalid regular expression: {exc}",
            path=path,
            expected="a Python regular expression",
            found=pattern,
            fix="escape special characters with \\ (in YAML, quote the pattern)",
        ) from None


def _fail(reason: str, detail: str, value: Any) -> Verdict:
    return Verdict(False, 0.0, reason, f"{detail} (got {_short(value)})")


def _length(
    name: str, v: Any, lo: int | None, hi: int | None, unit: str, measure: Any
) -> Verdict | None:
    if unit == "words" and not isinstance(v, str):
        return _fail("wrong_type", f"{name}: words are counted in text", v)
    if not isinstance(v, str | list | dict):
        return _fail("wrong_type", f"{name}: a length needs text or a list", v)
    n = measure(v)
    unit = unit if isinstance(v, str) else "items"
    if lo is not None and n < lo:
        return Verdict(False, 0.0, "too_short", f"{name}: {n} {unit}, at least {lo} required")
    if hi is not None and n > hi:
        return Verdict(False, 0.0, "too_long", f"{name}: {n} {unit}, at most {hi} allowed")
    return None


def _pattern(name: str, v: Any, rx: re.Pattern[str]) -> Verdict | None:
    if isinstance(v, dict | list):
        return _fail("wrong_type", f"{name}: a pattern needs text", v)
    text = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
    if rx.search(text):
        return None
    return _fail("pattern_mismatch", f"{name}: does not match {rx.pattern!r}", v)


def _range(name: str, v: Any, lo: float | None, hi: float | None) -> Verdict | None:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return _fail("wrong_type", f"{name}: not a number", v)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        return _fail("out_of_range", f"{name}: outside {bounds}", v)
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _verifier(checks: list[Check]) -> Verifier:
    async def check(record: Record, ctx: Context) -> Verdict:
        for c in checks:
            verdict = c(record)
            if verdict is not None:
                return verdict
        return Verdict(True, 1.0)

    return check


@verifier(
    "rules",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "required": _FIELD_LIST,
            "fields": {"type": "object", "additionalProperties": FIELD_RULES},
        },
        "anyOf": [{"required": ["required"]}, {"required": ["fields"]}],
    },
)
def rules(
    *, required: list[str] | None = None, fields: dict[str, dict[str, Any]] | None = None
) -> Verifier:
    """Required fields and per-field type, allowed values, length, words, regex, range."""
    checks: list[Check] = [required_check(required)] if required else []
    for name, field_rules in (fields or {}).items():
        checks += field_checks(name, field_rules, f"$.fields.{name}")
    return _verifier(checks)


@verifier(
    "required",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["fields"],
        "properties": {"fields": _FIELD_LIST},
    },
)
def required(*, fields: list[str]) -> Verifier:
    """These fields must be present and not null."""
    return _verifier([required_check(fields)])


@verifier(
    "length",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["field"],
        "properties": {
            "field": {"type": "string"},
            "min": _LEN,
            "max": _LEN,
            "unit": {"enum": ["characters", "words"]},
        },
        "anyOf": [{"required": ["min"]}, {"required": ["max"]}],
    },
)
def length(
    *, field: str, min: int | None = None, max: int | None = None, unit: str = "characters"
) -> Verifier:  # noqa: A002
    """A field's length (characters, words, or list items) must lie within bounds."""
    key = ("min_words", "max_words") if unit == "words" else ("min_length", "max_length")
    return _verifier(field_checks(field, {key[0]: min, key[1]: max}, "$"))


@verifier(
    "regex",
    schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["field", "pattern"],
        "properties": {"field": {"type": "string"}, "pattern": {"type": "string"}},
    },
)
def regex(*, field: str, pattern: str) -> Verifier:
    """A field must contain a match of a regular expression (anchor it for a full match)."""
    return _verifier(field_checks(field, {"pattern": pattern}, "$"))
