"""litellm, configured once: the only module in synth that imports it.

Everything here touches the library (the call itself, its exceptions translated into
synth's error tree, its cost map, its model map); the client above decides when to call."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from synth.errors import ConfigError, LLMResponseError, LLMTransientError
from synth.llm.http import RefusedParam
from synth.llm.retrying import retry_after
from synth.llm.types import Completion, Message, logprobs_of
from synth.redaction import redact

_LOGPROB_PARAMS = ("logprobs", "top_logprobs")


_lib: Any = None
_prices: dict[str, tuple[float, float]] = {}
_logprob_support: dict[str, bool] = {}
_gc_frozen = False


def library() -> Any:
    """Import and configure litellm once: local cost map, quiet, no retries of its own."""
    global _lib
    if _lib is None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import logging
        import warnings

        import litellm

        from synth.llm import local_model

        # litellm builds each call's coroutine in a worker thread and awaits it back on the
        # loop; a call cancelled in between (a run that reached n) leaves it unawaited.
        warnings.filterwarnings(
            "ignore",
            message=r"coroutine '.*acompletion' was never awaited",
            category=RuntimeWarning,
        )

        litellm.suppress_debug_info = True
        litellm.drop_params = True  # e.g. `seed` for providers without it
        litellm.num_retries = 0
        litellm.disable_hf_tokenizer_download = True  # counting must never reach the network
        litellm.telemetry = False
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
        litellm.custom_provider_map = [
            *[p for p in litellm.custom_provider_map if p.get("provider") != "local"],
            {"provider": "local", "custom_handler": local_model.litellm_provider(litellm)},
        ]
        _lib = litellm
    return _lib


def after_first_call() -> None:
    # litellm keeps hundreds of thousands of long-lived objects (its model map, schemas,
    # lazily imported providers) and allocates thousands more per call. Moving the
    # long-lived ones out of the cyclic GC's reach once they exist, and collecting the
    # young generation less often, cuts the client's CPU per request by about a fifth
    # (bench/llm_throughput.py). A threshold the user set themselves is left alone.
    global _gc_frozen
    if not _gc_frozen:
        _gc_frozen = True
        gc.freeze()
        if gc.get_threshold()[0] == 700:  # CPython's default
            gc.set_threshold(10_000, 10, 10)


def price(model: str) -> tuple[float, float]:
    """(USD per input token, USD per output token) from litellm's cost map; 0 if unknown."""
    if model.startswith("local/"):
        return (0.0, 0.0)
    cached = _prices.get(model)
    if cached is None:
        try:
            info = library().get_model_info(model)
            cached = (
                float(info.get("input_cost_per_token") or 0),
                float(info.get("output_cost_per_token") or 0),
            )
        except Exception:  # not in litellm's cost map: unpriced
            cached = (0.0, 0.0)
        _prices[model] = cached
    return cached


def translate(exc: Exception, lib: Any, model: str, secrets: list[str]) -> Exception:
    """Wrap a litellm exception once: transient (retried), config (stops the run), or a
    per-call response error. Messages are scrubbed of API keys."""
    status = getattr(exc, "status_code", None)
    text = redact(f"{model}: {type(exc).__name__}: {exc}", secrets)
    waited = retry_after(
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    )
    if isinstance(exc, lib.RateLimitError) or status == 429:
        return LLMTransientError(text, retry_after=waited, status=429)
    if isinstance(exc, lib.AuthenticationError | lib.PermissionDeniedError) or status in (401, 403):
        return ConfigError(
            f"the provider refused the credentials for {model}",
            expected="a valid API key in the provider's environment variable",
            found=text,
            fix="set e.g. OPENAI_API_KEY / ANTHROPIC_API_KEY, or use local/smollm2",
        )
    if (
        isinstance(exc, lib.NotFoundError)
        or status == 404
        or "LLM Provider NOT provided" in str(exc)
    ):
        return ConfigError(
            f"unknown model {model!r}",
            expected="a litellm model string such as openai/gpt-4o-mini, or local/smollm2",
            found=text,
            fix="check the model name and its provider prefix",
        )
    transient = (
        lib.Timeout,
        lib.APIConnectionError,
        lib.InternalServerError,
        lib.ServiceUnavailableError,
    )
    if isinstance(exc, transient) or (status is not None and (status >= 500 or status == 408)):
        return LLMTransientError(text, retry_after=waited, status=status)
    if isinstance(exc, asyncio.TimeoutError | OSError):
        return LLMTransientError(text)
    if refuses_logprobs(lib, exc):
        return RefusedParam(text)
    return LLMResponseError(text)


def refuses_logprobs(lib: Any, exc: Exception) -> bool:
    """A 400 that names logprobs: an OpenAI-compatible server without them."""
    if isinstance(exc, lib.UnsupportedParamsError):
        return True
    return isinstance(exc, lib.BadRequestError) and "logprob" in str(exc).lower()


# --------------------------------------------------------------------------- local provider


async def _ensure_local(lib: Any, model: str) -> None:
    """Load the local model (off the loop) before litellm sees the call, so a missing
    extra is a ConfigError here rather than an error wrapped inside litellm."""
    from synth.llm import local_model

    name = model.split("/", 1)[1]
    await asyncio.to_thread(local_model.get, name)
    if model not in _prices:
        _prices[model] = (0.0, 0.0)
        lib.register_model(
            {
                model: {
                    "input_cost_per_token": 0.0,
                    "output_cost_per_token": 0.0,
                    "litellm_provider": "local",
                    "mode": "chat",
                    "supports_response_schema": True,
                }
            }
        )


async def ask(
    model: str,
    messages: list[Message],
    send: dict[str, Any],
    timeout: float | None,  # noqa: ASYNC109  (litellm's own per-request time limit)
    params: dict[str, Any],
    secrets: list[str],
) -> Completion:
    """One call through litellm (no retries of its own: the client's policy retries)."""
    lib = library()
    if model.startswith("local/"):
        await _ensure_local(lib, model)
    started = time.perf_counter()
    try:
        resp = await lib.acompletion(
            model=model,
            messages=messages,
            timeout=timeout,
            num_retries=0,
            max_retries=0,
            **params,
            **send,
        )
    except Exception as exc:
        raise translate(exc, lib, model, secrets) from exc
    after_first_call()
    choice = resp.choices[0]
    usage = getattr(resp, "usage", None)
    hidden = getattr(resp, "_hidden_params", None) or {}
    cost = 0.0 if model.startswith("local/") else float(hidden.get("response_cost") or 0.0)
    logprobs = getattr(choice, "logprobs", None) if send.get("logprobs") else None
    return Completion(
        text=choice.message.content or "",
        model=model,
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        cost_usd=cost,
        latency_s=time.perf_counter() - started,
        finish_reason=getattr(choice, "finish_reason", None),
        logprobs=logprobs_of(logprobs),
    )


def takes_logprobs(model: str) -> bool:
    """Whether litellm's model map says the provider returns logprobs with alternatives."""
    known = _logprob_support.get(model)
    if known is None:
        lib = library()
        try:
            name, provider, *_ = lib.get_llm_provider(model)
            params = lib.get_supported_openai_params(model=name, custom_llm_provider=provider)
            # Without the alternatives (gemini gives the sampled token's only), a
            # probability is no better than the answer itself.
            known = set(_LOGPROB_PARAMS) <= set(params or ())
        except Exception:  # a provider litellm cannot name: the call will say more
            known = False
        _logprob_support[model] = known
    return known


def supports_response_schema(model: str) -> bool:
    return bool(library().supports_response_schema(model=model))


def missing_credentials(model: str) -> list[str]:
    """The environment variables `model` needs for its credentials and none of which is
    set (any one of them would do), from litellm's own table; [] when it has what it needs
    or litellm does not know. Endpoint variables with a default (OLLAMA_API_BASE) are not
    required; an OpenAI-compatible server without a default endpoint is."""
    if model.startswith("local/"):
        return []
    if model.startswith("hosted_vllm/") and not os.environ.get("HOSTED_VLLM_API_BASE"):
        return ["HOSTED_VLLM_API_BASE"]
    try:
        found = library().validate_environment(model=model)
    except Exception:  # a model litellm cannot route: the call itself will say so
        return []
    if found.get("keys_in_environment"):
        return []
    return [k for k in found.get("missing_keys") or [] if k.endswith(("_KEY", "_TOKEN"))]
