"""A model's own chat template, rendered the way `transformers` renders it.

Training on `text` means training on exactly the tokens the model will see at inference,
so the conversation must be laid out by the model's template (the Jinja `chat_template`
of its tokenizer_config.json, or a `chat_template.jinja` beside it), not by a guess.
Templates come from model repositories, i.e. from strangers: they are rendered in
Jinja's ImmutableSandboxedEnvironment (no attribute tricks, no mutation of the
conversation), with the globals transformers provides (`raise_exception`,
`strftime_now`) and the config's `bos_token`/`eos_token`. A template that refuses a
conversation (`raise_exception`) is a ConfigError naming the template file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from synth.errors import ConfigError


@dataclass(frozen=True)
class ChatTemplate:
    source: str  # the file it came from, for messages
    template: str
    bos_token: str = ""
    eos_token: str = ""
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            compiled = env.from_string(self.template)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(
                f"the chat template is not valid Jinja: {exc.message}",
                file=self.source,
                path=f"chat_template line {exc.lineno}",
                fix="use the model's tokenizer_config.json as published",
            ) from None
        object.__setattr__(self, "_compiled", compiled)

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = False) -> str:
        import jinja2

        try:
            return str(
                self._compiled.render(
                    messages=messages,
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                    add_generation_prompt=add_generation_prompt,
                )
            )
        except _Refused as exc:
            raise ConfigError(
                f"the chat template refused the conversation: {exc}",
                file=self.source,
                found=[m.get("role") for m in messages],
                fix="check the roles the model accepts (some templates refuse a system turn)",
            ) from None
        except jinja2.TemplateError as exc:
            raise ConfigError(
                f"the chat template failed: {exc}", file=self.source, fix="check the template"
            ) from None


class _Refused(Exception):
    pass


def _raise(message: str) -> None:
    raise _Refused(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def load_chat_template(path: str | Path) -> ChatTemplate:
    """From a model folder (chat_template.jinja or tokenizer_config.json) or the file."""
    p = Path(path).expanduser()
    if p.is_dir():
        config_file = p / "tokenizer_config.json"
        jinja = p / "chat_template.jinja"
        if jinja.is_file():
            tokens = _read_config(config_file) if config_file.is_file() else {}
            return ChatTemplate(
                str(jinja),
                jinja.read_text(encoding="utf-8"),
                _token(tokens.get("bos_token")),
                _token(tokens.get("eos_token")),
            )
        p = config_file
    if not p.is_file():
        raise ConfigError(
            "chat template not found",
            file=str(p),
            path="--chat-template",
            expected="a model folder with tokenizer_config.json, or that file",
            found=str(path),
            fix="download the model's tokenizer_config.json and pass its path",
        )
    if p.suffix == ".jinja":
        return ChatTemplate(str(p), p.read_text(encoding="utf-8"))
    config = _read_config(p)
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if not isinstance(template, str) or not template:
        raise ConfigError(
            "the tokenizer config has no chat template",
            file=str(p),
            path="chat_template",
            expected="a Jinja template string",
            found=type(template).__name__ if template is not None else "nothing",
            fix="use an instruct/chat model's tokenizer_config.json (base models have none)",
        )
    return ChatTemplate(
        str(p), template, _token(config.get("bos_token")), _token(config.get("eos_token"))
    )


def _read_config(p: Path) -> dict[str, Any]:
    try:
        config = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"not a JSON file: {exc}", file=str(p), expected="tokenizer_config.json"
        ) from None
    if not isinstance(config, dict):
        raise ConfigError("not a JSON object", file=str(p), expected="tokenizer_config.json")
    return config


def _token(value: Any) -> str:
    """A special token as configs store it: a string, or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else ""
