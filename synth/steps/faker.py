"""`faker`: the source step that turns a Faker template into an endless stream of records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.content import building_base_dir
from synth.context import Context, derive_seed
from synth.errors import NotFound
from synth.records import Record, record_id
from synth.registry import step

SCHEMA = {
    "type": "object",
    "required": ["template"],
    "additionalProperties": False,
    "properties": {
        "template": {"type": "string", "description": "A name in templates/ or a path."},
        "locale": {
            "description": "Overrides the template's locales: one, a list, or {locale: weight}.",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
            ],
        },
        "concurrency": {
            "type": "integer",
            "minimum": 1,
            "description": "Accepted for symmetry with other steps; generation is CPU-bound.",
        },
    },
}

# Hand control back to the event loop every so often: generation never awaits otherwise.
_YIELD_EVERY = 64


@step("faker", schema=SCHEMA)
def faker(*, template: str, locale: Any = None, concurrency: int | None = None) -> Any:
    """Records from a Faker template (templates/*.yaml), seeded per record."""
    from synth.template import template as templates

    # Check the template while the recipe loads, so `synth validate` reports a bad provider
    # before any run. Outside a recipe load (a bare factory call) a template that cannot be
    # found from the working directory is looked up again from ctx.base_dir at run time.
    base = building_base_dir()
    try:
        templates.load(template, base or Path.cwd(), locale=locale)
    except NotFound:
        if base is not None:
            raise

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        tpl = templates.load(template, ctx.base_dir, locale=locale)
        sample, name, seed, rh = tpl.sample, tpl.name, ctx.seed, ctx.recipe_hash
        i = ctx.start_index
        while True:
            data, loc = sample(derive_seed(seed, i))
            meta = {"index": i, "generator": "faker", "template": name, "locale": loc}
            yield Record(record_id(rh, seed, i), data, meta)
            i += 1
            if i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    return run
