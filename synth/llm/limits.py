"""Rate limits and retries per model: the recipe's `limits:`, overridden by the environment.

    limits:
      openai/gpt-4o-mini: {max_concurrency: 32, rpm: 500, tpm: 200000}
      default: {timeout: 60, max_attempts: 4}
      hosted_vllm/my-model: {max_concurrency: 256, transport: http, structured: native}

Each setting of a model comes from the first of: its `SYNTH_LLM_*` environment variable
(an override for one run, applied to every model), the model's own entry, the `default`
entry, the built-in default. The recipe's JSON Schema validates the table; the recipe hash
leaves it out, so raising a limit resumes the same run instead of starting another.

`transport: http` sends an OpenAI-compatible model's calls (`openai/`, `hosted_vllm/`)
through `synth.llm.http` instead of litellm: the same requests at a fraction of the
client CPU, for endpoints fast enough that litellm's overhead sets the pace. It applies
to those providers only; other models keep litellm.

`structured: native` sends a JSON step's schema as the provider's `response_format`
(`{"type": "json_schema", ...}`) even where litellm's model map does not list the model as
supporting it: an OpenAI-compatible server (vLLM, Ollama, llama.cpp's server) decodes
under the schema, so a small model's answer parses the first time. `prompt` never sends
it (for a server that rejects the field); `auto`, the default, asks litellm's map.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from synth.errors import ConfigError
from synth.llm.http import TRANSPORTS, speaks_openai
from synth.llm.ratelimit import RateLimits
from synth.llm.retrying import RetryPolicy

DEFAULT = "default"
ENV = {
    "max_concurrency": "SYNTH_LLM_MAX_CONCURRENCY",
    "rpm": "SYNTH_LLM_RPM",
    "tpm": "SYNTH_LLM_TPM",
    "timeout": "SYNTH_LLM_TIMEOUT",
    "max_attempts": "SYNTH_LLM_MAX_ATTEMPTS",
}
TRANSPORT_ENV = "SYNTH_LLM_TRANSPORT"
BUILTIN: dict[str, float | str | None] = {
    "max_concurrency": 64,
    "rpm": None,
    "tpm": None,
    "timeout": 120.0,
    "max_attempts": 6,
    "transport": "litellm",
    "structured": "auto",
}
STRUCTURED = ("auto", "native", "prompt")

Table = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """Admission limits and the retry policy of one model's calls."""

    limits: RateLimits
    retry: RetryPolicy
    transport: str = "litellm"  # "http": synth.openai_http, for OpenAI-compatible models
    structured: str = "auto"  # "native": always send the JSON Schema as response_format


def resolve(
    table: Table | None, model: str | None = None, env: Mapping[str, str] | None = None
) -> ModelLimits:
    """The limits of `model` (None: of a model the table does not name)."""
    s = settings(table, model, env)
    return ModelLimits(
        RateLimits(max_concurrency=max(1, int(s["max_concurrency"])), rpm=s["rpm"], tpm=s["tpm"]),
        RetryPolicy(max_attempts=max(1, int(s["max_attempts"])), timeout=float(s["timeout"])),
        str(s["transport"]),
        str(s["structured"]),
    )


def per_model(table: Table | None, env: Mapping[str, str] | None = None) -> dict[str, ModelLimits]:
    """The limits of every model the table names (the others get `resolve(table)`)."""
    return {m: resolve(table, m, env) for m in (table or {}) if m != DEFAULT}


def settings(
    table: Table | None, model: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Every setting of `model`, merged in order of precedence (see the module doc)."""
    table = table or {}
    merged: dict[str, Any] = {**BUILTIN, **(table.get(DEFAULT) or {})}
    if model is not None:
        merged.update(table.get(model) or {})
    for key, name in ENV.items():
        value = env_number(name, env)
        if value is not None:
            merged[key] = value
    transport = (os.environ if env is None else env).get(TRANSPORT_ENV, "").strip()
    if transport:
        if transport not in TRANSPORTS:
            raise ConfigError(
                "unknown transport",
                file="environment",
                path=TRANSPORT_ENV,
                expected=" or ".join(TRANSPORTS),
                found=transport,
                fix=f"set {TRANSPORT_ENV}=http (OpenAI-compatible endpoints) or unset it",
            )
        merged["transport"] = transport
    return merged


def check(table: Table | None, *, file: str) -> None:
    """What the recipe schema cannot say: `transport: http` only on a model whose
    endpoint speaks the OpenAI wire format (a `default` entry may set it for all: it then
    applies to those models only)."""
    for model, entry in (table or {}).items():
        explicit = model != DEFAULT and (entry or {}).get("transport") == "http"
        if explicit and not speaks_openai(model):
            raise ConfigError(
                "transport http needs an OpenAI-compatible endpoint",
                file=file,
                path=f"$.limits.{model}.transport",
                expected="a model string starting with openai/ or hosted_vllm/",
                found=model,
                fix="drop `transport: http` for this model (litellm serves it)",
            )


def paces_requests(table: Table | None, env: Mapping[str, str] | None = None) -> bool:
    """Whether any model has an RPM or TPM limit (a sharded run then shares one budget)."""
    names = [None, *(m for m in (table or {}) if m != DEFAULT)]
    return any(
        s["rpm"] is not None or s["tpm"] is not None
        for s in (settings(table, m, env) for m in names)
    )


def env_number(name: str, env: Mapping[str, str] | None = None) -> float | None:
    """A positive number from the environment, None when unset; a ConfigError otherwise."""
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(
            "not a positive number",
            file="environment",
            path=name,
            expected="a number > 0",
            found=text,
            fix=f"set {name} to a positive number, or unset it",
        )
    return value
