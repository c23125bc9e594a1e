"""JSON Schema validation whose errors say file, JSON path, expected, found, and fix."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from synth.errors import ConfigError


def json_path(err: ValidationError) -> str:
    """`$.steps[0].template` style path of a validation error."""
    out = "$"
    for part in err.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def check(instance: Any, schema: dict[str, Any], *, file: str | None, what: str) -> None:
    """Raise a ConfigError for the most relevant violation of `schema`, if any."""
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    err = best_match(validator.iter_errors(instance))
    if err is None:
        return
    raise ConfigError(
        f"invalid {what}: {err.message}",
        file=file,
        path=json_path(err),
        expected=_expected(err),
        found=_found(err),
        fix=_fix(err, what),
    ) from None


def errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every violation as 'path: message' (for verifiers, which report rather than raise)."""
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [f"{json_path(e)}: {e.message}" for e in validator.iter_errors(instance)]


@cache
def packaged(name: str) -> dict[str, Any]:
    """A schema that ships in `synth/schemas/` (recipe, template, verifier, batch ...)."""
    text = resources.files("synth").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _expected(err: ValidationError) -> str:
    v: Any = err.validator_value
    kw = err.validator
    if kw == "type":
        return f"a value of type {v}"
    if kw == "enum":
        return f"one of {', '.join(map(repr, v))}"
    if kw == "required":
        return f"the fields {', '.join(v)}"
    if kw == "additionalProperties":
        props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        allowed = sorted(props)
        return f"only the fields {', '.join(allowed)}" if allowed else "no extra fields"
    return f"{kw}: {v!r}"


def _fix(err: ValidationError, what: str) -> str:
    if err.validator == "additionalProperties":
        return "remove or rename the unknown field (a typo is the usual cause)"
    if err.validator == "required":
        return "add the missing field"
    return f"change the value at {json_path(err)} to match; see the {what} docs in README.md"


def _found(err: ValidationError) -> Any:
    """The offending value; for unknown keys, just those keys rather than the whole object."""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        unknown = [k for k in err.instance if k not in props]
        return ", ".join(map(str, unknown)) if unknown else _brief(err.instance)
    if isinstance(err.instance, dict | list):
        return _brief(err.instance)
    return err.instance


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
