"""The closures a compiled template is made of: `(rng, stack) -> value` building blocks.

Each is created once at load with everything it needs bound in, so generating a record
does no config lookups. `stack` is the tuple of scope dicts (constants, record, nested
objects); `rng` is the record's seeded Random, shared with Faker.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from synth.errors import ConfigError

FieldFn = Callable[[random.Random, tuple[dict[str, Any], ...]], Any]


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    """The closures of one object's fields in evaluation order, plus what to do at the end:
    output formats (derived fields saw the native value) and hidden helper fields."""

    fields: tuple[tuple[str, FieldFn], ...]
    formats: tuple[tuple[str, str], ...] = ()
    hidden: tuple[str, ...] = ()

    def finish(self, d: dict[str, Any]) -> None:
        for name, fmt in self.formats:
            v = d[name]
            if v is not None:
                d[name] = v.strftime(fmt) if hasattr(v, "strftime") else format(v, fmt)
        for name in self.hidden:
            del d[name]


class Copy:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def picker(values: list[Any], weights: list[float] | None) -> Callable[[random.Random], Any]:
    n = len(values)
    if weights is None:
        return lambda rng: values[int(rng.random() * n)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    cut = bisect.bisect_right
    return lambda rng: values[cut(cum, rng.random() * total)]


def picker_field(values: list[Any], weights: list[float] | None) -> FieldFn:
    n = len(values)
    if weights is None:
        return lambda rng, s: values[int(rng.random() * n)]
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    cut = bisect.bisect_right
    return lambda rng, s: values[cut(cum, rng.random() * total)]


def call0(method: Callable[[], Any]) -> FieldFn:
    return lambda rng, s: method()


def call_kw(method: Callable[..., Any], kw: dict[str, Any]) -> FieldFn:
    return lambda rng, s: method(**kw)


def call_dyn(method: Callable[..., Any], static: dict[str, Any], dyn: dict[str, Any]) -> FieldFn:
    items = tuple(dyn.items())
    return lambda rng, s: method(**static, **{k: e(s) for k, e in items})


def rounded(fn: FieldFn, digits: int) -> FieldFn:
    def rounded(rng: random.Random, s: tuple[dict[str, Any], ...]) -> Any:
        v = fn(rng, s)
        return None if v is None else round(v, digits)

    return rounded


def nullable(fn: FieldFn, rate: float) -> FieldFn:
    return lambda rng, s: None if rng.random() < rate else fn(rng, s)


def guarded(fn: Callable[[Any], Any], file: str, path: str, source: str) -> FieldFn:
    """An expression failing on some record (None from a null_rate field, say) is still a
    template error: say where, instead of an anonymous traceback from generated code."""

    def derived(rng: random.Random, s: tuple[dict[str, Any], ...]) -> Any:
        try:
            return fn(s)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"expression failed on a generated record: {type(exc).__name__}: {exc}",
                file=file,
                path=path,
                expected="an expression that works for every generated value",
                found=source,
                fix="guard optional fields (`x if x is not none else ...`) or fix the types",
            ) from exc

    return derived
