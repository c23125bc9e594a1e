"""Faker record templates: read and checked once, compiled into closures, cheap per record.

A template (`templates/<name>.yaml`, schema `synth/schemas/template.json`) lists fields;
each becomes a closure `(rng, stack) -> value` with everything looked up at load: Faker
provider bound methods, argument dicts, cumulative weights, translated Jinja expressions.
Generating a record is then a loop over closures with no config dict in sight, which is
what keeps synth within a few percent of a hand-written Faker loop.

Determinism (each record owns its randomness): one Faker generator per locale is reused
and re-seeded with the record's own seed; choices and distributions draw from that same
seeded stream. Same seed, same record, whatever the concurrency. Creating a Faker per
record would be ~1000x slower. Errors in a template are ConfigErrors naming the file and
JSON path, raised at load.
"""

from __future__ import annotations

import bisect
import datetime
import decimal
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from synth.content import load_yaml, resolve
from synth.errors import ConfigError
from synth.schema import check, packaged
from synth.template.checks import precheck
from synth.template.closures import ObjectPlan
from synth.template.fields import FieldCompiler

DEFAULT_LOCALE = "en_US"


@dataclass(frozen=True, slots=True)
class _LocalePlan:
    locale: str
    seed_fn: Callable[[int], Any]
    rng: Any
    consts: dict[str, Any]
    plan: ObjectPlan


@dataclass(frozen=True)
class Template:
    """A compiled template. `sample(seed)` gives one record's data and its locale."""

    name: str
    file: Path
    description: str
    locales: tuple[str, ...]
    output_schema: dict[str, Any] | None
    field_names: tuple[str, ...]
    _plans: tuple[_LocalePlan, ...] = field(repr=False)
    _cum: tuple[float, ...] = field(repr=False)

    def sample(self, seed: int) -> tuple[dict[str, Any], str]:
        plans = self._plans
        if len(plans) == 1:
            lp = plans[0]
        else:  # the locale comes from the seed's top bits: no extra RNG, still per record
            lp = plans[bisect.bisect_right(self._cum, (seed >> 11) * 2.0**-53 * self._cum[-1])]
        lp.seed_fn(seed)
        data: dict[str, Any] = {}
        stack = (lp.consts, data)
        rng = lp.rng
        for name, fn in lp.plan.fields:
            data[name] = fn(rng, stack)
        lp.plan.finish(data)
        for k, v in data.items():
            if type(v) not in _SCALARS:
                data[k] = plain(v)
        return data, lp.locale

    def generate(self, seed: int) -> dict[str, Any]:
        return self.sample(seed)[0]


def load(
    ref: str | Path,
    base_dir: Path | None = None,
    *,
    locale: str | list[str] | dict[str, float] | None = None,
) -> Template:
    """Find (`templates/<ref>.yaml` or a path), check and compile a template; cached on the
    file's path, mtime and the locale override, so a recipe that names it twice pays once."""
    path = resolve("templates", str(ref), base_dir or Path.cwd()).resolve()
    stat = path.stat()
    key = json.dumps(locale, sort_keys=True)
    return _load(str(path), stat.st_mtime_ns, stat.st_size, key)


@cache
def _load(path: str, _mtime: int, _size: int, locale_key: str) -> Template:
    raw = load_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(
            "a template must be a mapping",
            file=path,
            expected="a YAML mapping with at least `fields:`",
            found=type(raw).__name__,
            fix="start the file with `fields:` and one field per line below it",
        )
    precheck(raw.get("fields"), path)
    check(raw, packaged("template.json"), file=path, what="template")
    override = json.loads(locale_key)
    weights = _locales(override if override is not None else raw.get("locale"), path, override)
    if raw.get("output_schema") is not None:
        _check_schema(raw["output_schema"], path)
    consts_base = dict(raw.get("vars") or {})
    compiler = FieldCompiler(path, consts=set(consts_base) | {"_locale"})
    generators = {loc: _generator(loc) for loc in weights}
    plans = []
    for loc, gen in generators.items():
        plan = compiler.compile(raw["fields"], gen)
        consts = {**consts_base, "_locale": loc}
        plans.append(_LocalePlan(loc, gen.seed_instance, gen.random, consts, plan))
    cum: list[float] = []
    total = 0.0
    for w in weights.values():
        total += w
        cum.append(total)
    return Template(
        name=str(raw.get("name") or Path(path).stem),
        file=Path(path),
        description=str(raw.get("description") or ""),
        locales=tuple(weights),
        output_schema=raw.get("output_schema"),
        field_names=tuple(n for n in raw["fields"] if n not in plans[0].plan.hidden),
        _plans=tuple(plans),
        _cum=tuple(cum),
    )


@cache
def _generator(locale: str) -> Any:
    """One Faker generator per locale for the whole process, owning its Random."""
    from faker import Faker

    gen = Faker(locale)._factories[0]
    gen.seed_instance(0)  # detach from Faker's shared module-level Random
    return gen


def _locales(value: Any, file: str, override: Any) -> dict[str, float]:
    from faker.config import AVAILABLE_LOCALES

    path = "locale (recipe override)" if override is not None else "$.locale"
    if value is None:
        weights = {DEFAULT_LOCALE: 1.0}
    elif isinstance(value, str):
        weights = {value: 1.0}
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        weights = {v: 1.0 for v in value}
    elif isinstance(value, dict) and value:
        weights = {str(k): v for k, v in value.items()}
    else:
        raise ConfigError(
            "bad locale",
            file=file,
            path=path,
            expected="a locale (en_US), a list of locales, or {locale: weight}",
            found=value,
            fix="write e.g. `locale: en_US` or `locale: {en_US: 3, de_DE: 1}`",
        )
    for loc, w in weights.items():
        norm = loc.replace("-", "_")
        if norm not in AVAILABLE_LOCALES:
            close = difflib.get_close_matches(norm, AVAILABLE_LOCALES, n=3)
            raise ConfigError(
                f"unknown Faker locale {loc!r}",
                file=file,
                path=path,
                expected="a Faker locale such as en_US, de_DE, fr_FR, ja_JP",
                found=loc,
                fix=f"did you mean {' or '.join(close)}?" if close else "see faker.config",
            )
        if not isinstance(w, int | float) or isinstance(w, bool) or w < 0:
            raise ConfigError(
                f"bad weight for locale {loc!r}",
                file=file,
                path=f"{path}.{loc}",
                expected="a number >= 0",
                found=w,
                fix="give each locale a non-negative weight",
            )
    if sum(weights.values()) <= 0:
        raise ConfigError(
            "locale weights are all zero",
            file=file,
            path=path,
            expected="at least one positive weight",
            found=value,
            fix="give at least one locale a weight above 0",
        )
    return {k.replace("-", "_"): float(v) for k, v in weights.items()}


def _check_schema(schema: Any, file: str) -> None:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.absolute_path)
        raise ConfigError(
            f"output_schema is not a valid JSON Schema: {exc.message}",
            file=file,
            path=f"$.output_schema{where}",
            expected="a JSON Schema (https://json-schema.org)",
            found=exc.instance,
            fix="fix the schema keyword at the path shown",
        ) from None


_SCALARS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """The JSON form of a generated value (Faker returns dates, Decimals, tuples ...)."""
    t = type(value)
    if t in _SCALARS:
        return value
    if t is dict:
        return {k: plain(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, set | frozenset):
        return sorted(plain(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    for base in (bool, int, float, str):  # subclasses (Markup, IntEnum ...)
        if isinstance(value, base):
            return base(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)
