"""Exact token counts, where synth has the model's own tokenizer offline.

Chunking (long-context QA) and the dry-run estimate count with these; everything else
falls back to `approx_tokens`. litellm is reached through `synth.llm.litellm`, the one
module that imports it.

Two lookups, two contracts: `exact_counter(model)` is the exact count or None;
`counter_for(model)` always returns a counter (the exact one, else `approx_tokens`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from synth.errors import ConfigError

Message = dict[str, Any]
TokenCounter = Callable[[str], int]

_PER_MESSAGE, _PER_REPLY = 4, 3  # OpenAI's chat-format allowance, as litellm counts it


def count_tokens(text: str | list[Message], *, model: str) -> int:
    """Tokens in `text` for `model`, or in the prompt of a message list (with litellm's
    allowance of a few tokens a message). Exact with the model's own tokenizer where synth
    has it offline (`exact_counter`), else `approx_tokens`."""
    exact = exact_counter(model)
    if isinstance(text, str):
        return exact(text) if exact is not None else approx_tokens(text)
    name = _openai_name(model) if exact is not None else None
    if name is not None:
        return int(_lib().token_counter(model=name, messages=text))
    count = exact or approx_tokens
    return sum(count(str(m.get("content") or "")) + _PER_MESSAGE for m in text) + _PER_REPLY


_counters: dict[str, Callable[[str], int] | None] = {}


def approx_tokens(text: str) -> int:
    """Token estimate without a tokenizer: max(chars / 4, words * 4/3).

    Both are the usual rules of thumb for English BPE vocabularies (OpenAI's ~4 characters
    or ~3/4 of a word per token); the max keeps short-word and long-word text from being
    undercounted. It runs 10-20% off a real tokenizer, which matters only for how close a
    built context lands to `context_tokens`, never for correctness."""
    if not text:
        return 0
    n_words = len(text.split())
    return max(1, math.ceil(len(text) / 4), math.ceil(n_words * 4 / 3))


def counter_for(model: str | None = None) -> TokenCounter:
    """The model's exact tokenizer if synth has it (loaded once, counts memoised per
    text), else `approx_tokens`. Look it up once per run, not per text: the first lookup
    may load a tokenizer (and litellm)."""
    if model is None:
        return approx_tokens
    return exact_counter(model) or approx_tokens


def exact_counter(model: str) -> Callable[[str], int] | None:
    """The exact token count of a text for `model`, or None when synth has no tokenizer of
    that model offline. Built once per model, and memoised per text (chunking counts the
    same sentences over and over).

    - `local/...`: the GGUF's own tokenizer (`synth.llm.local_model.vocab`; needs synth[local]).
    - OpenAI models (`openai/gpt-4o-mini`, `gpt-4.1`, ...): litellm's `token_counter` on
      the bare model name, with the tiktoken files litellm ships (cl100k_base,
      o200k_base; litellm points TIKTOKEN_CACHE_DIR at them), so nothing is downloaded.
    - Anything else: None. litellm would count with an unrelated OpenAI encoding, or
      download a Hugging Face tokenizer (llama, command-r); neither is exact."""
    if model not in _counters:
        count: Callable[[str], int] | None = None
        if model.startswith("local/"):
            from synth.llm import local_model

            try:
                count = local_model.vocab(model.split("/", 1)[1]).count
            except ConfigError:  # the local extra is not installed
                count = None
        else:
            name = _openai_name(model)
            if name is not None:
                count = functools.partial(_litellm_count, _lib(), name)
        try:
            if count is not None:
                count("synth")  # loads the tokenizer now; one that cannot load is not exact
        except Exception:
            count = None
        _counters[model] = None if count is None else functools.lru_cache(1 << 15)(count)
    return _counters[model]


def _litellm_count(lib: Any, name: str, text: str) -> int:
    return int(lib.token_counter(model=name, text=text))


def _openai_name(model: str) -> str | None:
    """The bare name of an OpenAI model whose encoding litellm counts exactly, else None."""
    lib = _lib()
    try:
        name, provider, *_ = lib.get_llm_provider(model)
    except Exception:  # not a model litellm can route
        return None
    # litellm counts any other name as gpt-3.5-turbo, a name tiktoken does not know with
    # cl100k_base (new OpenAI models are o200k_base), and gpt-4o* with o200k_base.
    if provider not in ("openai", "azure") or name not in lib.open_ai_chat_completion_models:
        return None
    try:
        import tiktoken

        encoding = "o200k_base" if "gpt-4o" in name else tiktoken.encoding_name_for_model(name)
    except (ImportError, KeyError):
        return None
    return name if encoding in ("cl100k_base", "o200k_base") else None


def _lib() -> Any:
    from synth.llm.litellm import library

    return library()
