"""`json_schema`: a record's data must match a JSON Schema.

The schema is written inline (`schema:`), kept in a file (`schema_file:`), or taken from a
Faker template (`template: card-transactions` means that template's `output_schema`), so a
template and the check of its output cannot drift apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema.exceptions import relevance

from synth.chain import Verdict, Verifier
from synth.content import building_base_dir, note_used
from synth.context import Context
from synth.errors import ConfigError, NotFound
from synth.records import Record
from synth.registry import verifier

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "schema": {"type": "object", "description": "An inline JSON Schema."},
        "schema_file": {"type": "string", "description": "A JSON or YAML file holding one."},
        "template": {"type": "string", "description": "Use this Faker template's output_schema."},
    },
    "oneOf": [
        {"required": ["schema"]},
        {"required": ["schema_file"]},
        {"required": ["template"]},
    ],
}
_MAX_DETAILS = 3


@verifier("json_schema", schema=SCHEMA)
def json_schema(
    *,
    schema: dict[str, Any] | None = None,
    schema_file: str | None = None,
    template: str | None = None,
) -> Verifier:
    """Data must match a JSON Schema (inline, from a file, or a template's output_schema)."""
    if sum(x is not None for x in (schema, schema_file, template)) != 1:
        raise ConfigError(
            "json_schema needs exactly one of schema, schema_file, template",
            expected="one of: schema (inline), schema_file (a path), template (a name)",
            found={k: v for k, v in (("schema_file", schema_file), ("template", template)) if v},
            fix="keep one of them",
        )
    static = _validator(schema) if schema is not None else None  # a typo fails at load
    cache: dict[Path, Any] = {}
    base = building_base_dir()  # set while a recipe loads: check the file/template now
    if static is None:
        try:
            cache[base or Path.cwd()] = _validator(
                _schema(None, schema_file, template, base or Path.cwd())
            )
        except NotFound:
            if base is not None:
                raise  # else: found from ctx.base_dir at run time

    def validator_for(ctx: Context) -> Any:
        if static is not None:
            return static
        if ctx.base_dir not in cache:
            cache[ctx.base_dir] = _validator(_schema(None, schema_file, template, ctx.base_dir))
        return cache[ctx.base_dir]

    async def check(record: Record, ctx: Context) -> Verdict:
        v = validator_for(ctx)
        if v.is_valid(record.data):
            return Verdict(True)
        errors = sorted(v.iter_errors(record.data), key=relevance)
        details = [f"{_path(e)}: {e.message}" for e in errors[:_MAX_DETAILS]]
        more = f" (+{len(errors) - _MAX_DETAILS} more)" if len(errors) > _MAX_DETAILS else ""
        return Verdict(False, 0.0, "schema_mismatch", "; ".join(details) + more)

    return check


def _schema(
    inline: dict[str, Any] | None, file: str | None, template: str | None, base_dir: Path
) -> dict[str, Any]:
    if inline is not None:
        return inline
    if template is not None:
        from synth.template import template as templates

        tpl = templates.load(template, base_dir)
        if tpl.output_schema is None:
            raise ConfigError(
                f"template {tpl.name!r} has no output_schema",
                file=str(tpl.file),
                path="$.output_schema",
                expected="a JSON Schema for the records this template makes",
                fix="add `output_schema:` to the template, or give the verifier `schema:`",
            )
        return tpl.output_schema
    assert file is not None
    path = Path(file) if Path(file).is_absolute() else base_dir / file
    if path.is_file():
        note_used(path)
    if path.suffix == ".json":
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(
                "file not found", file=str(path), fix="check schema_file (relative to the project)"
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON: {exc.msg}", file=str(path), path=f"line {exc.lineno}"
            ) from None
    else:
        from synth.content import load_yaml

        loaded = load_yaml(path)
    if not isinstance(loaded, dict):
        raise ConfigError(
            "a schema file must hold a JSON Schema object",
            file=str(path),
            found=type(loaded).__name__,
        )
    return loaded


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigError(
            f"not a valid JSON Schema: {exc.message}",
            path="$.schema" + "".join(f".{p}" for p in exc.absolute_path),
            expected="a JSON Schema (https://json-schema.org)",
            found=exc.instance,
            fix="fix the schema keyword at the path shown",
        ) from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _path(err: Any) -> str:
    out = "$"
    for part in err.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
