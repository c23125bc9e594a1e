"""Prompt templates (Jinja2, StrictUndefined) rendered into chat messages.

A template in `templates/prompts/<name>.j2` either defines `{% block system %}` and
`{% block user %}` (each becomes one message; rendering blocks separately means nothing
a record contains can move text from one message to the other), or is plain text, which
becomes a single user message. The template's sha256 goes into every call's lineage, so
a changed prompt is visible in the manifest and misses the response cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from synth.content import building_base_dir, note_used, resolve
from synth.errors import ConfigError

# Where the built-in prompts live when a recipe's own project has no `templates/prompts/`.
_BUILTIN_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Prompt:
    name: str
    path: Path
    source: str
    hash: str

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """Chat messages for these variables; a missing variable is a ConfigError."""
        import jinja2
        from jinja2.sandbox import SecurityError

        template = _compile(self.source)
        try:
            if "user" in template.blocks:
                ctx = template.new_context(variables)
                messages = []
                for role in ("system", "user"):
                    if role in template.blocks:
                        text = "".join(template.blocks[role](ctx)).strip()
                        if text:
                            messages.append({"role": role, "content": text})
                return messages
            return [{"role": "user", "content": template.render(**variables).strip()}]
        except jinja2.UndefinedError as exc:
            raise ConfigError(
                f"prompt template uses an undefined variable: {exc.message}",
                file=str(self.path),
                path=_template_line(exc),
                expected=f"only the variables {', '.join(sorted(variables))}",
                fix="fix the variable name in the template",
            ) from None
        except SecurityError as exc:
            raise ConfigError(
                f"prompt template reaches what the sandbox refuses: {exc}",
                file=str(self.path),
                path=_template_line(exc),
                expected="a template that reads variables and uses filters, nothing else",
                fix="remove attribute and method access on Python internals from the template",
            ) from None
        except Exception as exc:  # any error a template raises is the template's
            raise ConfigError(
                f"prompt template failed to render: {type(exc).__name__}: {exc}"[:500],
                file=str(self.path),
                path=_template_line(exc),
                expected="a template that renders for every record",
                fix="fix the expression at that line (or guard it with {% if %})",
            ) from None


def _template_line(exc: BaseException) -> str | None:
    """`line N` of the template where rendering failed: Jinja2 maps its frames back to
    template lines in the traceback it rewrites."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in ("<template>", "<unknown>"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"line {line}" if line else None


def check_prompts(*names: str | None) -> None:
    """Called by a step or verifier factory while its recipe loads: load the prompts it
    will use, so a missing or broken prompt fails `synth validate` rather than a run,
    and the recipe hash covers the prompt files. A no-op outside a recipe load."""
    base = building_base_dir()
    if base is not None:
        for name in names:
            if name is not None:
                load_prompt(name, base)


def load_prompt(name: str, base_dir: Path) -> Prompt:
    """`name` (looked up as `templates/prompts/<name>.j2`) or a path to a `.j2` file."""
    ref = name if name.endswith(".j2") else f"prompts/{name}"
    try:
        path = resolve("templates", ref, base_dir, suffixes=(".j2",))
    except ConfigError:
        builtin = _BUILTIN_ROOT / "templates" / "prompts" / f"{name}.j2"
        if not builtin.is_file():
            raise
        path = builtin
        note_used(path)
    return _load(path.resolve())


@lru_cache(maxsize=128)
def _load(path: Path) -> Prompt:
    source = path.read_text(encoding="utf-8")
    _compile(source)  # syntax errors surface at recipe load, not mid-run
    return Prompt(path.stem, path, source, hashlib.sha256(source.encode()).hexdigest()[:16])


@lru_cache(maxsize=128)
def _compile(source: str) -> Any:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    # Sandboxed: prompt templates may arrive inline through the service.
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["data_block"] = encode_data
    try:
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"prompt template syntax error: {exc.message}",
            path=f"line {exc.lineno}",
            expected="a valid Jinja2 template",
            fix="fix the template syntax at that line",
        ) from exc


DATA_TAG = "data"


def encode_data(value: Any) -> str:
    """`value` as inert data, the guard against prompt injection from records: JSON with
    every `<` and `>` escaped (as `\\u003c`/`\\u003e`, still valid JSON for the same
    string), inside `<data>` tags, so nothing inside can close the tag or pass for prompt
    text. Templates reach it as the `data_block` filter."""
    body = json.dumps(value, ensure_ascii=False, indent=1, sort_keys=False, default=str)
    body = body.replace("<", "\\u003c").replace(">", "\\u003e")
    return f"<{DATA_TAG}>\n{body}\n</{DATA_TAG}>"
