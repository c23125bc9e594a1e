"""`prompt`: render a Jinja2 prompt per record, call the model, write the answer to a field.

The generic LLM step. The prompt is a template in `templates/prompts/<name>.j2` (or inline
`prompt:`), rendered with the record's fields as variables under StrictUndefined: a
variable the record does not have stops the run with a ConfigError naming it, instead of
sending the model an empty hole. With `json: true` (or a `schema:`), the answer is parsed
as JSON and validated, and the parsed value is stored. With `samples: k`, k answers per
record become k child records, each with its own sample index in the cache key. A call
whose answer is unusable (JSON still invalid after its re-asks) leaves the record flowing
on with `meta["error"]`: the chain rejects it with reason `prompt_llm_response_error` into
rejects.jsonl. An endpoint that fails every retry stops the run instead (resumable).

    - use: prompt
      template: product-description     # or: prompt: "Describe {{ name }} in one sentence."
      output_field: description
      max_tokens: 48
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.context import Context
from synth.errors import ConfigError
from synth.llm.calls import RECORD_FAILURES, complete, failed, step_failure
from synth.llm.prompts import Prompt, check_prompts, load_prompt
from synth.records import Record, child_id
from synth.registry import step
from synth.streams import flat_ordered_map

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "template": {
            "type": "string",
            "description": "a prompt in templates/prompts/, or a .j2 path",
        },
        "prompt": {
            "type": "string",
            "description": "an inline Jinja2 prompt (instead of template)",
        },
        "system": {"type": "string", "description": "an inline Jinja2 system message"},
        "output_field": {"type": "string", "minLength": 1, "default": "completion"},
        "json": {"type": "boolean", "default": False},
        "schema": {"type": "object", "description": "JSON Schema the parsed answer must match"},
        "model": {"type": "string"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "max_tokens": {"type": "integer", "minimum": 1, "default": 256},
        "stop": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "samples": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
        "concurrency": {"type": "integer", "minimum": 1},
    },
    "additionalProperties": False,
}


@step("prompt", schema=SCHEMA, llm=True)
def prompt(
    *,
    template: str | None = None,
    prompt: str | None = None,
    system: str | None = None,
    output_field: str = "completion",
    json: bool = False,
    schema: dict[str, Any] | None = None,
    model: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int = 256,
    stop: str | list[str] | None = None,
    samples: int = 1,
    concurrency: int = 8,
) -> Any:
    """Render a prompt per record and store the model's answer (text or validated JSON)."""
    if (template is None) == (prompt is None):
        raise ConfigError(
            "the prompt step needs exactly one of `template` and `prompt`",
            expected="template: <name in templates/prompts/> or prompt: <inline Jinja2 text>",
            found={"template": template, "prompt": prompt},
            fix="keep one of the two",
        )
    inline = None if prompt is None else _inline(prompt, "prompt")
    check_prompts(template)
    system_prompt = None if system is None else _inline(system, "system")
    want = schema if schema is not None else ({} if json else None)
    sampling: dict[str, Any] = {
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "stop": stop,
    }

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        tmpl = inline or load_prompt(str(template), ctx.base_dir)
        tmpl_hash = _combined_hash(tmpl, system_prompt)

        def messages_for(record: Record) -> list[dict[str, str]]:
            variables = {**record.data, "record": record.data}
            msgs = _render(tmpl, variables, record)
            if system_prompt is not None:
                sys_msg = _render(system_prompt, variables, record)[0]["content"]
                msgs = [{"role": "system", "content": sys_msg}] + [
                    m for m in msgs if m["role"] != "system"
                ]
            return msgs

        async def answer(record: Record, messages: list[dict[str, str]], k: int) -> Record:
            try:
                c = await complete(
                    ctx,
                    messages,
                    model=model,
                    schema=want,
                    n_index=k,
                    template_hash=tmpl_hash,
                    **{key: v for key, v in sampling.items() if v is not None},
                )
            except RECORD_FAILURES as exc:
                error = step_failure(ctx, "prompt", exc)
                if samples == 1:
                    return record.evolve(error=error)
                meta = {**record.meta, "parents": [record.id], "sample": k, "error": error}
                return Record(child_id(record, "prompt", k), dict(record.data), meta)
            value = c.parsed if want is not None else (c.text or "").strip()
            data = {**record.data, output_field: value}
            calls = [*record.meta.get("llm_calls", []), c.lineage()]
            if samples == 1:
                return record.evolve(data=data, llm_calls=calls)
            meta = {**record.meta, "parents": [record.id], "sample": k, "llm_calls": calls}
            return Record(child_id(record, "prompt", k), data, meta)

        async def expand(record: Record) -> list[Record]:
            if failed(record):
                return [record]
            messages = messages_for(record)
            return list(
                await asyncio.gather(*(answer(record, messages, k) for k in range(samples)))
            )

        async for r in flat_ordered_map(records, expand, concurrency):
            yield r

    return run


def _inline(source: str, what: str) -> Prompt:
    """An inline template, compiled now so a syntax error is reported at recipe load."""
    import jinja2

    try:
        jinja2.Environment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"prompt template syntax error: {exc.message} (line {exc.lineno})",
            path=f"$.{what}",
            expected="a valid Jinja2 template",
            fix="fix the template syntax at that line",
        ) from None
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return Prompt(f"inline {what}", Path(f"<inline {what}>"), source, digest)


def _render(tmpl: Prompt, variables: dict[str, Any], record: Record) -> list[dict[str, str]]:
    try:
        return tmpl.render(**variables)
    except ConfigError as exc:
        undefined = "undefined variable" in exc.message
        raise ConfigError(
            f"{exc.message} (record {record.id})",
            file=exc.file,
            path=exc.path,
            expected=f"a variable among the record's fields: {', '.join(sorted(record.data))}"
            if undefined
            else exc.expected,
            fix="fix the variable name in the prompt, or add that field in an earlier step"
            if undefined
            else exc.fix,
        ) from None


def _combined_hash(tmpl: Prompt, system: Prompt | None) -> str:
    if system is None:
        return tmpl.hash
    return hashlib.sha256(f"{tmpl.hash}:{system.hash}".encode()).hexdigest()[:16]
