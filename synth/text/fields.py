"""Which fields of a record are measured: the ones the model wrote, or the ones asked for.

Diversity figures, length histograms and the collapse monitor exist to catch a model
that repeats itself. Measuring "the first of text/content/document/body" measured the
Faker-written ticket `body` of the demo recipe and never the model-written `summary`, so
a collapsed model looked healthy. So the run records, per record, which top-level data
fields its LLM steps wrote (`meta["llm_fields"]`, set by `synth.runner.written`), and
whatever measures a run reads them from there; a user can name others (`fields:`,
`--fields`). Records no model wrote (a rule-based recipe, real data, an anchor set) keep
the rule real data is written for (`synth.text.lexical.text_of`: a `text`-like field when
there is one, else every leaf), the same on both sides of a comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from synth.errors import ConfigError
from synth.text.lexical import text_of

LLM_FIELDS = "llm_fields"  # meta key: data fields an LLM step wrote, in the order written


def model_fields(metas: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """The fields LLM steps wrote in any of these records' lineage, first seen first."""
    seen: dict[str, None] = {}
    for meta in metas:
        written = (meta or {}).get(LLM_FIELDS)
        if isinstance(written, list):
            seen.update((str(f), None) for f in written)
    return list(seen)


def text_for(data: Any, fields: Sequence[str] | None) -> str:
    """The text measured for one record: its `fields` (a dotted name reaches into a
    nested object; non-text values are skipped), or with no fields the record's text."""
    if not fields or not isinstance(data, Mapping):
        return text_of(data)
    parts = []
    for name in fields:
        value = lookup(data, name)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, Mapping | list | tuple):  # chat messages, lists of answers
            parts.append(all_text(value))
    return "\n".join(p for p in parts if p)


def lookup(data: Mapping[str, Any], name: str) -> Any:
    """`data[name]`, or for a dotted name the nested value (None when absent)."""
    if name in data:
        return data[name]
    value: Any = data
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def all_text(value: Any) -> str:
    """Every string leaf, in field order (numbers and booleans are not text)."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    walk(value)
    return " ".join(parts)


def parse_fields(raw: Any, *, where: str, path: str) -> list[str] | None:
    """`fields:` from a config (a list or a comma-separated string) or `--fields a,b`;
    None when not given (the model-written fields are used)."""
    if raw is None:
        return None
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(f, str) for f in items):
        raise ConfigError(
            "fields must be a list of field names",
            file=where,
            path=path,
            expected="e.g. [summary] or --fields summary,body",
            found=raw,
            fix="name the data fields to measure, comma-separated",
        )
    names = [f.strip() for f in items if f.strip()]
    if not names:
        raise ConfigError(
            "no field named",
            file=where,
            path=path,
            expected="at least one data field, e.g. summary",
            found=raw,
            fix="name a field, or leave it out to measure the fields the model wrote",
        )
    return names


def check_present(
    fields: Sequence[str], records: Iterable[Mapping[str, Any]], *, where: str, path: str
) -> None:
    """A ConfigError when none of the (first thousand) records has any named field: a
    typo would otherwise measure empty text and report a collapse."""
    seen: set[str] = set()
    known: set[str] = set()
    for i, data in enumerate(records):
        if i >= 1000:
            break
        if isinstance(data, Mapping):
            known.update(str(k) for k in data)
            seen.update(f for f in fields if lookup(data, f) is not None)
    missing = [f for f in fields if f not in seen]
    if known and missing:
        raise ConfigError(
            f"no record has the field {missing[0]!r}",
            file=where,
            path=path,
            expected=f"fields of the records: {', '.join(sorted(known))}",
            found=list(fields),
            fix="check the spelling (a dotted name reaches into a nested object)",
        )
