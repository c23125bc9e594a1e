"""Compiling a template's `fields:` into closures `(rng, stack) -> value`, checking each.

Field kinds (exactly one per field): `faker`, `random`, `choice`, `const`, `derive`, `text`,
`fields` (nested object), `list`, `cases`. Short forms: `email` or `pyint(min_value=1)` is
a Faker call, `"{{ a + b }}"` a derived expression, `"Hi {{ name }}"` a text template, any
non-string value a constant. Every problem is a ConfigError with file and JSON path.

Scopes: an expression sees the fields of its own object, then those of enclosing objects,
then the template's `vars` and `_locale`. The stack holds one dict per level (level 0:
constants, 1: the record, 2+: nested objects), and each name is bound to its level at
compile time. Fields run in dependency order (stable: declaration order otherwise).
"""

from __future__ import annotations

import ast
import copy
import difflib
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError

from synth.errors import ConfigError
from synth.template import closures as tc
from synth.template import expressions
from synth.template.checks import KINDS, check_cases, check_signature, provider_names, toposort
from synth.template.closures import FieldFn, ObjectPlan

_COMMON = {"null_rate", "hidden", "description", "format"}
_OPTIONS = {
    "faker": {"args", "round"},
    "random": {"args", "round"},
    "choice": {"weights", "render"},
    "const": set(),
    "derive": {"round"},
    "text": set(),
    "fields": set(),
    "list": {"count", "unique"},
    "cases": {"by", "default"},
}
_RANDOM_METHODS = sorted(
    m
    for m in (
        *("random", "uniform", "randint", "randrange", "triangular", "betavariate"),
        *("expovariate", "gammavariate", "gauss", "lognormvariate", "normalvariate"),
        *("vonmisesvariate", "paretovariate", "weibullvariate", "binomialvariate"),
    )
    if hasattr(random.Random, m)
)
_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


class FieldCompiler:
    def __init__(self, file: str, consts: set[str]) -> None:
        self.file = file
        self.consts = consts
        self.gen: Any = None

    def compile(self, fields: Mapping[str, Any], gen: Any) -> ObjectPlan:
        """Compile the top-level fields for one locale's Faker generator."""
        self.gen = gen
        self._providers = provider_names(gen)
        plan, _ = self._object(fields, "$.fields", {c: 0 for c in self.consts}, 1)
        return plan

    def error(self, message: str, path: str, **kw: Any) -> ConfigError:
        return ConfigError(message, file=self.file, path=path, **kw)

    # -- structure ------------------------------------------------------------------------

    def _object(
        self, fields: Mapping[str, Any], path: str, outer: dict[str, int], level: int
    ) -> tuple[ObjectPlan, set[str]]:
        scope = {**outer, **{n: level for n in fields}}
        fns: dict[str, FieldFn] = {}
        deps: dict[str, set[str]] = {}
        specs: dict[str, dict[str, Any]] = {}
        for name, raw in fields.items():
            specs[name], short = self._normalize(raw, f"{path}.{name}")
            fns[name], deps[name] = self._field(specs[name], short, f"{path}.{name}", scope, level)
        check_cases(specs, self.file, path)
        order = toposort(deps, self.file, path)
        formats = tuple((n, s["format"]) for n, s in specs.items() if "format" in s)
        hidden = tuple(n for n, s in specs.items() if s.get("hidden"))
        external = set().union(*deps.values()) - set(fields)
        return ObjectPlan(tuple((n, fns[n]) for n in order), formats, hidden), external

    def _normalize(self, raw: Any, path: str) -> tuple[dict[str, Any], bool]:
        if isinstance(raw, dict):
            return raw, False
        if not isinstance(raw, str):
            return {"const": raw}, True
        text = raw.strip()
        if "{{" in text or "{%" in text:
            inner = text[2:-2]
            if text.startswith("{{") and text.endswith("}}") and "{{" not in inner:
                return {"derive": inner.strip()}, True
            return {"text": raw}, True
        m = _CALL.match(text)
        if not m:
            raise self.error(
                "cannot read this field",
                path,
                expected='a Faker call (`email`, `pyint(min_value=1)`), "{{ expression }}", '
                "or a mapping such as {const: ...}",
                found=raw,
                fix="for a constant string write {const: ...}",
            )
        spec: dict[str, Any] = {"faker": m.group(1)}
        if m.group(2) and m.group(2).strip():
            spec["args"] = self._call_args(m.group(2), raw, path)
        return spec, True

    def _call_args(self, text: str, raw: str, path: str) -> dict[str, Any]:
        try:
            call = ast.parse(f"f({text})", mode="eval").body
            assert isinstance(call, ast.Call)
            if call.args:
                raise ValueError("arguments must be named, like min_value=1")
            return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except (SyntaxError, ValueError, AssertionError) as exc:
            raise self.error(
                f"cannot read the arguments: {exc}",
                path,
                expected="provider(name=literal, ...), e.g. pyint(min_value=1, max_value=9)",
                found=raw,
                fix="name every argument and use literal values (use args: for expressions)",
            ) from None

    def _field(
        self, spec: dict[str, Any], short: bool, path: str, scope: dict[str, int], level: int
    ) -> tuple[FieldFn, set[str]]:
        kinds = [k for k in KINDS if k in spec]
        kind = kinds[0]
        extra = set(spec) - {kind} - _COMMON - _OPTIONS[kind]
        if extra:
            raise self.error(
                f"option {sorted(extra)[0]!r} does not apply to a {kind} field",
                f"{path}.{sorted(extra)[0]}",
                expected=f"options of {kind}: {', '.join(sorted(_OPTIONS[kind] | _COMMON))}",
                found=sorted(extra),
                fix="remove it, or move it to the field kind it belongs to",
            )
        fn, refs = getattr(self, f"_k_{kind}")(
            spec, path if short else f"{path}.{kind}", scope, level
        )
        if "round" in spec:
            fn = tc.rounded(fn, spec["round"])
        rate = spec.get("null_rate")
        if rate:
            fn = tc.nullable(fn, float(rate))
        return fn, refs

    # -- kinds ----------------------------------------------------------------------------

    def _k_faker(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        name = spec["faker"]
        if name not in self._providers:
            close = difflib.get_close_matches(name, self._providers, n=3, cutoff=0.6)
            raise self.error(
                f"unknown Faker provider {name!r} for locale {self._locale()}",
                path,
                expected="a Faker provider such as name, email, company, pyfloat",
                found=name,
                fix=f"did you mean {' or '.join(close)}?"
                if close
                else "for a constant write {const: ...}; providers: faker.readthedocs.io",
            )
        method = getattr(self.gen, name)
        args = spec.get("args") or {}
        apath = path[: -len(".faker")] + ".args" if path.endswith(".faker") else path
        check_signature(self.file, method, f"Faker provider {name!r}", args, apath)
        static, dynamic, refs = self._args(args, apath, scope)
        if not dynamic:
            self._trial(lambda: method(**static), f"Faker provider {name!r}", path)
            return (tc.call0(method) if not static else tc.call_kw(method, static)), refs
        return tc.call_dyn(method, static, dynamic), refs

    def _k_random(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        name = spec["random"]
        if name not in _RANDOM_METHODS:
            raise self.error(
                f"unknown random distribution {name!r}",
                path,
                expected=f"one of {', '.join(_RANDOM_METHODS)}",
                found=name,
                fix="use a method of Python's random.Random, e.g. lognormvariate",
            )
        method = getattr(random.Random, name)
        args = spec.get("args") or {}
        apath = path[: -len(".random")] + ".args"
        check_signature(self.file, getattr(random.Random(), name), name, args, apath)
        static, dynamic, refs = self._args(args, apath, scope)
        if dynamic:
            raise self.error(
                "random arguments must be literals",
                apath,
                expected="numbers",
                found=args,
                fix="compute with a derive field instead",
            )
        self._trial(lambda: method(random.Random(0), **static), name, path)
        return (lambda rng, s, m=method, kw=static: m(rng, **kw)), refs

    def _k_choice(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        choice = spec["choice"]
        weights: list[Any] | None
        if isinstance(choice, dict):
            if "weights" in spec:
                raise self.error(
                    "weights given twice", path, fix="use a list with weights, or a mapping"
                )
            values, weights = list(choice), list(choice.values())
        else:
            values, weights = list(choice), spec.get("weights")
        if weights is not None:
            wpath = path if isinstance(choice, dict) else path[: -len(".choice")] + ".weights"
            if len(weights) != len(values):
                raise self.error(
                    "weights and choices differ in length",
                    wpath,
                    expected=f"{len(values)} weights, one per choice",
                    found=f"{len(weights)} weights",
                    fix="give exactly one weight per choice",
                )
            bad = [w for w in weights if isinstance(w, bool) or not isinstance(w, int | float)]
            if bad or any(w < 0 for w in weights) or sum(weights) <= 0:
                raise self.error(
                    "bad weights",
                    wpath,
                    expected="numbers >= 0, at least one above 0",
                    found=weights,
                    fix="use relative weights such as [3, 1, 1]",
                )
        refs: set[str] = set()
        if spec.get("render"):
            fns = []
            for i, v in enumerate(values):
                fn, r = self._text(str(v), f"{path}[{i}]", scope)
                fns.append(fn)
                refs |= r
            pick = tc.picker(fns, weights)
            return (lambda rng, s: pick(rng)(s)), refs
        if any(isinstance(v, dict | list) for v in values):
            values = [tc.Copy(v) for v in values]
            pick = tc.picker(values, weights)
            return (lambda rng, s: copy.deepcopy(pick(rng).value)), refs
        return tc.picker_field(values, weights), refs

    def _k_const(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        value = spec["const"]
        if isinstance(value, dict | list):
            return (lambda rng, s: copy.deepcopy(value)), set()
        return (lambda rng, s: value), set()

    def _k_derive(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        fn, refs = self._expr(spec["derive"], path, scope)
        return tc.guarded(fn, self.file, path, spec["derive"]), refs

    def _k_text(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        fn, refs = self._text(spec["text"], path, scope)
        return tc.guarded(fn, self.file, path, spec["text"]), refs

    def _k_fields(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        plan, external = self._object(spec["fields"], path, scope, level + 1)
        fields, finish = plan.fields, plan.finish

        def obj(rng: random.Random, stack: tuple[dict[str, Any], ...]) -> dict[str, Any]:
            d: dict[str, Any] = {}
            inner = (*stack, d)
            for name, fn in fields:
                d[name] = fn(rng, inner)
            finish(d)
            return d

        return obj, external

    def _k_list(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        item_spec, short = self._normalize(spec["list"], path)
        item, refs = self._field(item_spec, short, path, scope, level)
        count = spec.get("count", [1, 3])
        lo, hi = (count, count) if isinstance(count, int) else count
        if lo > hi:
            raise self.error(
                "count range is reversed",
                path[: -len(".list")] + ".count",
                expected="[min, max] with min <= max",
                found=count,
                fix=f"write [{hi}, {lo}]",
            )
        span = hi - lo + 1
        if not spec.get("unique"):
            return (
                lambda rng, s: [item(rng, s) for _ in range(lo + int(rng.random() * span))]
            ), refs

        def unique(rng: random.Random, s: tuple[dict[str, Any], ...]) -> list[Any]:
            want = lo + int(rng.random() * span)
            out: list[Any] = []
            seen: set[str] = set()
            for _ in range(want * 20):
                if len(out) >= want:
                    break
                v = item(rng, s)
                key = repr(v)
                if key not in seen:
                    seen.add(key)
                    out.append(v)
            return out

        return unique, refs

    def _k_cases(self, spec: dict[str, Any], path: str, scope: dict[str, int], level: int) -> Any:
        base = path[: -len(".cases")]
        by = spec.get("by")
        if not by:
            raise self.error("cases need `by`", base, fix="add `by: <field name>`")
        if by not in scope:
            raise self._unknown(by, f"{base}.by", scope, by)
        refs = {by}
        table: dict[Any, FieldFn] = {}
        for key, sub in spec["cases"].items():
            sub_spec, short = self._normalize(sub, f"{path}.{key}")
            table[key], r = self._field(sub_spec, short, f"{path}.{key}", scope, level)
            refs |= r
        default: FieldFn | None = None
        if "default" in spec:
            d_spec, short = self._normalize(spec["default"], f"{base}.default")
            default, r = self._field(d_spec, short, f"{base}.default", scope, level)
            refs |= r
        at = scope[by]

        def case(rng: random.Random, s: tuple[dict[str, Any], ...]) -> Any:
            fn = table.get(s[at][by], default)
            return None if fn is None else fn(rng, s)

        return case, refs

    # -- helpers --------------------------------------------------------------------------

    def _args(
        self, args: Mapping[str, Any], path: str, scope: dict[str, int]
    ) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
        static: dict[str, Any] = {}
        dynamic: dict[str, Any] = {}
        refs: set[str] = set()
        for k, v in args.items():
            if isinstance(v, str) and v.strip().startswith("{{") and v.strip().endswith("}}"):
                dynamic[k], r = self._expr(v.strip()[2:-2].strip(), f"{path}.{k}", scope)
                refs |= r
            else:
                static[k] = v
        return static, dynamic, refs

    def _expr(self, source: str, path: str, scope: dict[str, int]) -> tuple[Any, set[str]]:
        try:
            refs = expressions.references(expressions.parse_expression(source))
            self._known(refs, path, scope, source)
            return expressions.compile_expression(source, scope), refs
        except TemplateSyntaxError as exc:
            raise self.error(
                f"invalid Jinja2 expression: {exc.message}",
                path,
                expected="a Jinja2 expression, e.g. amount > 100 and country != 'US'",
                found=source,
                fix="fix the expression syntax (strings in quotes, `and`/`or`, filters with |)",
            ) from None

    def _text(self, source: str, path: str, scope: dict[str, int]) -> tuple[Any, set[str]]:
        try:
            refs = expressions.references(expressions.parse_text(source))
            self._known(refs, path, scope, source)
            return expressions.compile_text(source, scope), refs
        except TemplateSyntaxError as exc:
            raise self.error(
                f"invalid Jinja2 template: {exc.message}",
                path,
                expected="text with {{ field }} placeholders",
                found=source,
                fix="fix the template syntax",
            ) from None

    def _known(self, refs: set[str], path: str, scope: dict[str, int], source: str) -> None:
        for name in sorted(refs):
            if name not in scope:
                raise self._unknown(name, path, scope, source)

    def _unknown(self, name: str, path: str, scope: dict[str, int], source: str) -> ConfigError:
        visible = sorted(n for n in scope if n != "_locale")
        close = difflib.get_close_matches(name, visible, n=3)
        return self.error(
            f"unknown field {name!r} referenced",
            path,
            expected=f"a field visible here: {', '.join(visible)}",
            found=source,
            fix=f"did you mean {' or '.join(close)}?"
            if close
            else f"define a field named {name!r}, or fix the name",
        )

    def _trial(self, call: Callable[[], Any], what: str, path: str) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001  (any failure of a provider is a config error)
            raise self.error(
                f"{what} fails with these arguments: {type(exc).__name__}: {exc}",
                path,
                expected="arguments the provider accepts",
                found=str(exc),
                fix="check the argument values (ranges, types, dates)",
            ) from None

    def _locale(self) -> str:
        return str(getattr(self.gen, "_Generator__config", {}).get("locale", "?"))
