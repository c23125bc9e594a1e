"""`perturb`: noisy variants of existing records, with every change in the lineage.

    - use: perturb
      k: 2                                   # variants per input record
      labels: [is_fraud]                     # never touched
      fields:
        merchant: {typo: 0.05, case: 0.1}    # per-character / per-word rates
        amount: {jitter: 0.05}               # relative bound, applied to every variant
        timestamp: {shift_days: 3}
        interests: {shuffle: 0.5}
        address.city: {nullify: 0.1}         # dotted paths reach into nested objects

Records come from the previous step, or from `path:` (JSONL, CSV, Parquet) when perturb is
the first step. Variant j of record r draws from `derive_seed(run seed, r.id, j)`, so the
output does not depend on order or concurrency.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synth.context import Context, derive_seed
from synth.errors import ConfigError
from synth.records import Record, child_id
from synth.registry import step
from synth.text import noise

_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_TEXT_OPS = ("token_dropout", "typo", "drop", "swap", "case", "whitespace")
OPS = {
    "typo": "per character: replace with a keyboard-adjacent key",
    "drop": "per character: delete it",
    "swap": "per character: swap with the next one",
    "case": "per word: change its case",
    "whitespace": "per gap between words: remove, double or tab it",
    "token_dropout": "per word: delete it",
    "jitter": "relative bound: multiply numbers by 1 +- up to this",
    "shift_days": "move dates / ISO timestamps by up to +- this many days",
    "nullify": "per record: set the field to null",
    "drop_field": "per record: remove the field",
    "shuffle": "per record: shuffle a list",
}

SCHEMA = {
    "type": "object",
    "required": ["fields"],
    "additionalProperties": False,
    "properties": {
        "fields": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    **{op: _RATE for op in OPS if op not in ("jitter", "shift_days")},
                    "jitter": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
                    "shift_days": {"type": "number", "exclusiveMinimum": 0},
                },
            },
        },
        "labels": {"type": "array", "items": {"type": "string"}},
        "k": {"type": "integer", "minimum": 1, "maximum": 1000},
        "keep_original": {"type": "boolean"},
        "path": {"type": "string", "description": "Read records from this file instead."},
        "format": {"enum": ["jsonl", "csv", "parquet"]},
    },
}


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    path: tuple[str, ...]
    name: str
    ops: tuple[tuple[str, Any], ...]  # in _ORDER; "chars" carries (typo, drop, swap)


@step("perturb", schema=SCHEMA)
def perturb(
    *,
    fields: Mapping[str, Mapping[str, float]],
    labels: list[str] | None = None,
    k: int = 1,
    keep_original: bool = False,
    path: str | None = None,
    format: str | None = None,  # noqa: A002  (the recipe key users write)
) -> Any:
    """Noisy variants of records: typos, case, whitespace, jitter, date shifts, dropout."""
    plans = _plan(fields, labels or [])

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        if path is not None:
            from synth.steps.read import read_records

            records = read_records(path, ctx, format=format)
        async for parent in records:
            if keep_original:
                yield parent
            for j in range(k):
                rng = random.Random(derive_seed(ctx.seed, parent.id, j))
                data, changes = apply(parent.data, plans, rng)
                ctx.stats["perturbations"] += len(changes)
                meta = {
                    **parent.meta,
                    "parents": [parent.id],
                    "perturbations": [*parent.meta.get("perturbations", ()), *changes],
                }
                yield Record(child_id(parent, "perturb", j), data, meta)

    return run


def apply(
    data: Mapping[str, Any], plans: tuple[_FieldPlan, ...], rng: random.Random
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A perturbed copy of `data` (the input is never modified) and the changes made."""
    out = dict(data)
    changes: list[dict[str, Any]] = []
    for plan in plans:
        holder = _holder(out, plan.path)
        key = plan.path[-1]
        if holder is None or key not in holder:
            continue
        value = holder[key]
        for op, arg in plan.ops:
            if op == "drop_field":
                if rng.random() < arg:
                    changes.append({"field": plan.name, "op": op, "before": value})
                    del holder[key]
                    break
            elif value is None:
                break
            elif op == "nullify":
                if rng.random() < arg:
                    changes.append({"field": plan.name, "op": op, "before": value})
                    value = None
            else:
                value, done = _OPERATORS[op](value, rng, arg)
                for c in done:
                    c["field"] = plan.name
                changes += done
        else:
            holder[key] = value
    return out, changes


_OPERATORS: dict[str, Callable[[Any, random.Random, Any], tuple[Any, list[dict[str, Any]]]]] = {
    "token_dropout": noise.token_dropout,
    "chars": lambda v, rng, a: noise.chars(v, rng, a[0], a[1], a[2]),
    "case": noise.case,
    "whitespace": noise.whitespace,
    "jitter": noise.jitter,
    "shift_days": noise.shift_date,
    "shuffle": noise.shuffle,
}
_ORDER = ("drop_field", "nullify", *_OPERATORS)


def _holder(data: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    """The dict that holds the last key of a dotted path, copied on the way down so the
    parent record's nested objects are never modified."""
    cur = data
    for key in path[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            return None
        cur[key] = nxt = dict(nxt)
        cur = nxt
    return cur


def _plan(fields: Mapping[str, Mapping[str, float]], labels: list[str]) -> tuple[_FieldPlan, ...]:
    plans = []
    for name, ops in fields.items():
        for label in labels:
            if name == label or name.startswith(label + ".") or label.startswith(name + "."):
                raise ConfigError(
                    f"{name!r} is a label field; perturb never changes labels",
                    path=f"$.fields.{name}",
                    expected="fields that are not listed in `labels`",
                    found=name,
                    fix=f"remove {name!r} from `fields` (or from `labels` if it is not a label)",
                )
        unknown = sorted(set(ops) - set(OPS))
        if unknown:
            raise ConfigError(
                f"unknown perturbation {unknown[0]!r}",
                path=f"$.fields.{name}.{unknown[0]}",
                expected=f"one of {', '.join(OPS)}",
                found=unknown,
                fix="; ".join(f"{k}: {v}" for k, v in OPS.items()),
            )
        typo, drop, swap = (float(ops.get(o, 0)) for o in ("typo", "drop", "swap"))
        if typo + drop + swap > 1:
            raise ConfigError(
                "typo + drop + swap rates add up to more than 1",
                path=f"$.fields.{name}",
                expected="per-character rates whose sum is at most 1",
                found=dict(ops),
                fix="lower the rates (0.01-0.05 per character is already a lot of noise)",
            )
        args: dict[str, Any] = {o: float(r) for o, r in ops.items() if r and o in _ORDER}
        if typo + drop + swap:
            args["chars"] = (typo, drop, swap)
        ordered = tuple((o, args[o]) for o in _ORDER if o in args)
        plans.append(_FieldPlan(tuple(name.split(".")), name, ordered))
    return tuple(plans)
