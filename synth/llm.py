"""The LLM seam: every model call in synth goes through `LLMClient.complete`.

This is the only module that imports litellm, and it does so lazily (litellm takes seconds
to import), so `synth --help` and rule-based recipes never pay for it. litellm is used as a
transport only; everything a data-generation run needs is done here, once, for every
model: the response cache (`cache.py`), admission control per (provider, model)
(`ratelimit.py`), retries with tenacity on transient errors only (litellm's and the
OpenAI SDK's own retries are off, so there is one policy), structured output
(`structured.py`), token and cost accounting, and the budget cap.

    client = client_for_run(model="local/smollm2", state_dir=".synth-state", ...)
    c = await client.complete([{"role": "user", "content": "Hi"}], temperature=0.7)
    c.text, c.cached, c.cost_usd, c.lineage()
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .cache import FILENAME, Entry, ResponseCache, request_key
from .errors import BudgetExceeded, ConfigError, LLMError, LLMResponseError, LLMTransientError
from .ratelimit import Limiter, Limits
from .structured import complete_structured

Message = dict[str, Any]

# Passed to litellm but not part of what determines the answer: kept out of the cache key.
_NOT_IN_KEY = frozenset({"timeout", "api_key", "api_base", "base_url", "api_version", "extra_headers"})
_DEFAULT_OUTPUT_TOKENS = 256  # reserved against budgets when a call sets no max_tokens
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer, with what lineage needs: who answered, from cache or not, at what cost.
    For a structured call, tokens and cost add up every re-ask."""

    text: str
    parsed: Any = None
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cached: bool = False
    latency_s: float = 0.0
    template_hash: str | None = None
    n_index: int = 0
    reasks: int = 0
    finish_reason: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def lineage(self) -> dict[str, Any]:
        """The entry a step appends to `meta["llm_calls"]`."""
        out: dict[str, Any] = {
            "model": self.model,
            "template_hash": self.template_hash,
            "cached": self.cached,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "latency_s": round(self.latency_s, 4),
        }
        if self.n_index:
            out["n_index"] = self.n_index
        if self.reasks:
            out["reasks"] = self.reasks
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Retries of transient errors (429, 5xx, timeouts, dropped connections).

    `wait` is any tenacity wait strategy; the default honours `Retry-After` and otherwise
    backs off exponentially with full jitter. Tests pass `tenacity.wait_none()`."""

    max_attempts: int = 6
    timeout: float = 120.0  # seconds per attempt
    wait: Any = None
    max_wait: float = 60.0


@dataclass(slots=True)
class _Usage:
    calls: int = 0
    requests: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    rate_limited: int = 0
    retries: int = 0
    reasks: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "failures": self.failures,
            "failure_reasons": dict(sorted(self.failure_reasons.items())),
            "rate_limited": self.rate_limited,
            "retries": self.retries,
            "reasks": self.reasks,
        }


class LLMClient:
    """The run's model client. One per run; safe to share between concurrent steps."""

    def __init__(
        self,
        *,
        model: str | None = None,
        cache: ResponseCache | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        reask_limit: int = 2,
        litellm_params: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.limits = limits or Limits()
        self.retry = retry or RetryPolicy()
        self.max_cost_usd, self.max_tokens = max_cost_usd, max_tokens
        self.reask_limit = reask_limit
        self.litellm_params = dict(litellm_params or {})
        self._secrets = _secret_values(self.litellm_params)
        self._usage: dict[str, _Usage] = {}
        self._limiters: dict[tuple[str, str], Limiter] = {}
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._spent_cost = self._reserved_cost = 0.0
        self._spent_tokens = self._reserved_tokens = 0
        self.stopped_by: str | None = None

    # -- the seam

    async def complete(
        self,
        messages: list[Message],
        *,
        model: str | None = None,
        schema: dict[str, Any] | None = None,
        n_index: int = 0,
        template_hash: str | None = None,
        **params: Any,
    ) -> Completion:
        """One answer. `schema` asks for JSON matching it (parsed into `.parsed`); `n_index`
        tells samples of the same prompt apart in the cache; the rest are sampling params."""
        model = model or self.model
        if not model:
            raise ConfigError(
                "no model for this LLM call",
                expected="a model on the step, a recipe `model:`, or --model",
                fix="add `model: local/smollm2` (or e.g. openai/gpt-4o-mini) to the recipe",
            )
        started = time.perf_counter()
        if schema is None:
            c = await self._call(model, messages, params, n_index, None)
            parsed, reasks, parts = None, 0, [c]
        else:
            parts = []

            async def call(msgs: list[Message], fmt: dict[str, Any] | None) -> Completion:
                part = await self._call(model, msgs, params, n_index, fmt)
                parts.append(part)
                return part

            try:
                parsed, c, reasks = await complete_structured(
                    call, messages, schema, native=self._native_schema(model), reask_limit=self.reask_limit
                )
            except LLMResponseError:
                self._stats(model).failure_reasons["invalid_json"] += 1
                self._stats(model).failures += 1
                raise
            self._stats(model).reasks += reasks
        return replace(
            c,
            parsed=parsed,
            template_hash=template_hash,
            n_index=n_index,
            reasks=reasks,
            cached=all(p.cached for p in parts),
            input_tokens=sum(p.input_tokens for p in parts),
            output_tokens=sum(p.output_tokens for p in parts),
            cost_usd=sum(p.cost_usd for p in parts),
            latency_s=time.perf_counter() - started,
        )

    def usage(self) -> dict[str, Any]:
        """Calls, cache hits, tokens, cost, failures and 429s, in total and per model.
        Every value is a count, so the usage of a resumed run's processes adds up."""
        total = _Usage()
        for u in self._usage.values():
            for name in ("calls", "requests", "cache_hits", "input_tokens", "output_tokens"):
                setattr(total, name, getattr(total, name) + getattr(u, name))
            for name in ("failures", "rate_limited", "retries", "reasks"):
                setattr(total, name, getattr(total, name) + getattr(u, name))
            total.cost_usd += u.cost_usd
            total.failure_reasons.update(u.failure_reasons)
        out = total.as_dict()
        out["by_model"] = {m: u.as_dict() for m, u in sorted(self._usage.items())}
        return out

    async def aclose(self) -> None:
        if self.cache is not None:
            self.cache.close()

    # -- one plain call: cache, single-flight, budget, admission, retries

    async def _call(
        self,
        model: str,
        messages: list[Message],
        params: dict[str, Any],
        n_index: int,
        response_format: dict[str, Any] | None,
    ) -> Completion:
        send = {k: v for k, v in params.items() if v is not None}
        if response_format is not None:
            send["response_format"] = response_format
        key = request_key(model, messages, {k: v for k, v in send.items() if k not in _NOT_IN_KEY}, n_index)
        u = self._stats(model)
        u.calls += 1
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                u.cache_hits += 1
                return _from_entry(hit, model)
        pending = self._inflight.get(key)
        if pending is not None:  # the same request is already on its way: share its answer
            u.cache_hits += 1
            return replace(await asyncio.shield(pending), cached=True, cost_usd=0.0)
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        if model.startswith("local/") and "seed" not in send:
            # llama.cpp samples with a random seed unless told; a seed drawn from the key
            # makes a local answer a function of the request, cached or not.
            send = {**send, "seed": int(key[:8], 16)}
        try:
            c = await self._fetch(model, messages, send, u)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: sharers re-raise it, nobody else needs to
            raise
        finally:
            del self._inflight[key]
        fut.set_result(c)
        if self.cache is not None:
            self.cache.put(
                key, Entry(model, c.text, c.input_tokens, c.output_tokens, c.cost_usd, c.finish_reason)
            )
        return c

    async def _fetch(self, model: str, messages: list[Message], send: dict[str, Any], u: _Usage) -> Completion:
        from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

        est_in = sum(len(str(m.get("content") or "")) for m in messages) // 4 + 4
        est_out = int(send.get("max_tokens") or send.get("max_completion_tokens") or _DEFAULT_OUTPUT_TOKENS)
        price_in, price_out = _price(model)
        est_cost = est_in * price_in + est_out * price_out
        self._reserve(est_cost, est_in + est_out)
        limiter = self._limiter(model)

        def count_retry(state: Any) -> None:
            u.retries += 1

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(LLMTransientError),
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self.retry.wait if self.retry.wait is not None else _default_wait(self.retry.max_wait),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    ticket = await limiter.acquire(est_in + est_out)
                    u.requests += 1
                    try:
                        c = await self._transport(model, messages, send)
                    except LLMTransientError as exc:
                        limited = exc.status == 429
                        u.rate_limited += limited
                        limiter.release(ticket, rate_limited=limited, retry_after=exc.retry_after, ok=False)
                        raise
                    except BaseException:
                        limiter.release(ticket, ok=False)
                        raise
                    limiter.release(ticket, tokens=c.total_tokens)
        except LLMError as exc:
            u.failures += 1
            u.failure_reasons[_reason(exc)] += 1
            raise
        finally:
            self._reserved_cost -= est_cost
            self._reserved_tokens -= est_in + est_out
        if not c.cost_usd and (price_in or price_out):
            c = replace(c, cost_usd=c.input_tokens * price_in + c.output_tokens * price_out)
        self._spent_cost += c.cost_usd
        self._spent_tokens += c.total_tokens
        u.input_tokens += c.input_tokens
        u.output_tokens += c.output_tokens
        u.cost_usd += c.cost_usd
        return c

    def _reserve(self, cost: float, tokens: int) -> None:
        """Refuse a call that could take the run past a cap; once refused, refuse all."""
        if self.stopped_by is None:
            if self.max_tokens is not None and (
                self._spent_tokens + self._reserved_tokens + tokens > self.max_tokens
            ):
                self.stopped_by = "max_tokens"
            elif self.max_cost_usd is not None and (
                self._spent_cost + self._reserved_cost + cost > self.max_cost_usd
            ):
                self.stopped_by = "max_cost_usd"
        if self.stopped_by is not None:
            spent = (
                f"${self._spent_cost:.4f} of ${self.max_cost_usd}"
                if self.stopped_by == "max_cost_usd"
                else f"{self._spent_tokens} of {self.max_tokens} tokens"
            )
            raise BudgetExceeded(f"LLM budget reached: {spent} spent", reason=self.stopped_by)
        self._reserved_cost += cost
        self._reserved_tokens += tokens

    # -- litellm

    async def _transport(self, model: str, messages: list[Message], send: dict[str, Any]) -> Completion:
        lib = _litellm()
        if model.startswith("local/"):
            await _ensure_local(lib, model)
        started = time.perf_counter()
        try:
            resp = await lib.acompletion(
                model=model,
                messages=messages,
                timeout=self.retry.timeout,
                num_retries=0,
                max_retries=0,
                **self.litellm_params,
                **send,
            )
        except Exception as exc:
            raise _translate(exc, lib, model, self._secrets) from exc
        _after_first_call()
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        hidden = getattr(resp, "_hidden_params", None) or {}
        cost = 0.0 if model.startswith("local/") else float(hidden.get("response_cost") or 0.0)
        return Completion(
            text=choice.message.content or "",
            model=model,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            cost_usd=cost,
            latency_s=time.perf_counter() - started,
            finish_reason=getattr(choice, "finish_reason", None),
        )

    def _native_schema(self, model: str) -> bool:
        if model.startswith("local/"):
            return True  # llama.cpp enforces the schema with a grammar
        try:
            return bool(_litellm().supports_response_schema(model=model))
        except Exception:  # unknown to litellm's model map: instruct + extract instead
            return False

    def _limiter(self, model: str) -> Limiter:
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        key = (provider, model)
        limiter = self._limiters.get(key)
        if limiter is None:
            limits = self.limits
            if provider == "local":  # one llama.cpp context: queue here, not in threads
                limits = replace(limits, max_concurrency=1, adaptive=False)
            limiter = self._limiters[key] = Limiter(limits)
        return limiter

    def _stats(self, model: str) -> _Usage:
        u = self._usage.get(model)
        if u is None:
            u = self._usage[model] = _Usage()
        return u


def client_for_run(
    *,
    model: str | None,
    state_dir: str | Path,
    no_cache: bool = False,
    max_cost_usd: float | None = None,
    max_tokens: int | None = None,
    limits: Limits | None = None,
    retry: RetryPolicy | None = None,
    litellm_params: dict[str, Any] | None = None,
) -> LLMClient:
    """The client a run uses. Limits and retries not given come from the environment
    (`SYNTH_LLM_MAX_CONCURRENCY`, `SYNTH_LLM_RPM`, `SYNTH_LLM_TPM`, `SYNTH_LLM_TIMEOUT`,
    `SYNTH_LLM_MAX_ATTEMPTS`); endpoints and keys are litellm's usual variables
    (`OPENAI_API_KEY`, `OPENAI_API_BASE`, ...)."""
    env = os.environ
    if limits is None:
        limits = Limits(
            max_concurrency=int(env.get("SYNTH_LLM_MAX_CONCURRENCY") or 64),
            rpm=float(env["SYNTH_LLM_RPM"]) if env.get("SYNTH_LLM_RPM") else None,
            tpm=float(env["SYNTH_LLM_TPM"]) if env.get("SYNTH_LLM_TPM") else None,
        )
    if retry is None:
        retry = RetryPolicy(
            max_attempts=int(env.get("SYNTH_LLM_MAX_ATTEMPTS") or 6),
            timeout=float(env.get("SYNTH_LLM_TIMEOUT") or 120),
        )
    cache = None if no_cache else ResponseCache(Path(state_dir) / FILENAME)
    return LLMClient(
        model=model,
        cache=cache,
        limits=limits,
        retry=retry,
        max_cost_usd=max_cost_usd,
        max_tokens=max_tokens,
        litellm_params=litellm_params,
    )


def estimate(recipe: Any, n: int, *, samples: int = 3) -> dict[str, Any]:
    """Dry-run estimate of calls, tokens and cost for `n` records (see `synth.dryrun`)."""
    from .dryrun import estimate as _estimate

    return _estimate(recipe, n, samples=samples)


def price(model: str) -> tuple[float, float]:
    """(USD per input token, USD per output token) from litellm's cost map; 0 if unknown."""
    return _price(model)


# --------------------------------------------------------------------------- internals

_lib: Any = None
_prices: dict[str, tuple[float, float]] = {}
_gc_frozen = False


def _litellm() -> Any:
    """Import and configure litellm once: local cost map, quiet, no retries of its own."""
    global _lib
    if _lib is None:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        import logging
        import warnings

        import litellm

        # litellm builds each call's coroutine in a worker thread and awaits it back on the
        # loop; a call cancelled in between (a run that reached n) leaves it unawaited.
        warnings.filterwarnings(
            "ignore", message=r"coroutine '.*acompletion' was never awaited", category=RuntimeWarning
        )

        litellm.suppress_debug_info = True
        litellm.drop_params = True  # e.g. `seed` for providers without it
        litellm.num_retries = 0
        litellm.telemetry = False
        for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
        litellm.custom_provider_map = [
            *[p for p in litellm.custom_provider_map if p.get("provider") != "local"],
            {"provider": "local", "custom_handler": _local_provider()},
        ]
        _lib = litellm
    return _lib


def _after_first_call() -> None:
    # litellm keeps hundreds of thousands of long-lived objects (its model map, schemas,
    # lazily imported providers). Moving them out of the cyclic GC's reach once they exist
    # cuts the client's CPU per request by about a fifth (bench/llm_throughput.py).
    global _gc_frozen
    if not _gc_frozen:
        _gc_frozen = True
        gc.freeze()


def _price(model: str) -> tuple[float, float]:
    if model.startswith("local/"):
        return (0.0, 0.0)
    cached = _prices.get(model)
    if cached is None:
        try:
            info = _litellm().get_model_info(model)
            cached = (float(info.get("input_cost_per_token") or 0), float(info.get("output_cost_per_token") or 0))
        except Exception:  # not in litellm's cost map: unpriced
            cached = (0.0, 0.0)
        _prices[model] = cached
    return cached


def _default_wait(max_wait: float) -> Any:
    from tenacity import wait_random_exponential

    backoff = wait_random_exponential(multiplier=0.5, max=max_wait)

    def wait(state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:  # the server said when; add a little jitter to spread retries
            return float(min(max_wait, after * (1 + 0.1 * _jitter())))
        return float(backoff(state))

    return wait


def _jitter() -> float:
    import random

    return random.random()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, LLMTransientError):
        return "rate_limited" if exc.status == 429 else "transient"
    return "invalid_response"


def _translate(exc: Exception, lib: Any, model: str, secrets: list[str]) -> Exception:
    """Wrap a litellm exception once: transient (retried), config (stops the run), or a
    per-call response error. Messages are scrubbed of API keys."""
    status = getattr(exc, "status_code", None)
    text = _redact(f"{model}: {type(exc).__name__}: {exc}", secrets)
    if isinstance(exc, lib.RateLimitError) or status == 429:
        return LLMTransientError(text, retry_after=_retry_after(exc), status=429)
    if isinstance(exc, lib.AuthenticationError | lib.PermissionDeniedError) or status in (401, 403):
        return ConfigError(
            f"the provider refused the credentials for {model}",
            expected="a valid API key in the provider's environment variable",
            found=text,
            fix="set e.g. OPENAI_API_KEY / ANTHROPIC_API_KEY, or use local/smollm2",
        )
    if isinstance(exc, lib.NotFoundError) or status == 404 or "LLM Provider NOT provided" in str(exc):
        return ConfigError(
            f"unknown model {model!r}",
            expected="a litellm model string such as openai/gpt-4o-mini, or local/smollm2",
            found=text,
            fix="check the model name and its provider prefix",
        )
    transient = (lib.Timeout, lib.APIConnectionError, lib.InternalServerError, lib.ServiceUnavailableError)
    if isinstance(exc, transient) or (status is not None and (status >= 500 or status == 408)):
        return LLMTransientError(text, retry_after=_retry_after(exc), status=status)
    if isinstance(exc, asyncio.TimeoutError | OSError):
        return LLMTransientError(text)
    return LLMResponseError(text)


def _retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after`), if it did."""
    for source in (getattr(exc, "litellm_response_headers", None), getattr(getattr(exc, "response", None), "headers", None)):
        if not source:
            continue
        ms = source.get("retry-after-ms")
        if ms:
            try:
                return max(0.0, float(ms) / 1000)
            except ValueError:
                pass
        value = source.get("retry-after")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                from email.utils import parsedate_to_datetime

                try:
                    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
    return None


def _secret_values(params: dict[str, Any]) -> list[str]:
    values = [str(v) for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]
    if params.get("api_key"):
        values.append(str(params["api_key"]))
    return sorted(set(values), key=len, reverse=True)


def _redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def _from_entry(e: Entry, model: str) -> Completion:
    return Completion(
        text=e.text,
        model=model,
        input_tokens=e.input_tokens,
        output_tokens=e.output_tokens,
        cost_usd=0.0,  # this run paid nothing for it
        cached=True,
        finish_reason=e.finish_reason,
    )


# --------------------------------------------------------------------------- local provider


async def _ensure_local(lib: Any, model: str) -> None:
    """Load the local model (off the loop) before litellm sees the call, so a missing
    extra is a ConfigError here rather than an error wrapped inside litellm."""
    from . import local_model

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


def _local_provider() -> Any:
    """litellm custom provider `local/...` backed by `synth.local_model`."""
    from litellm import ModelResponse, Usage
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    from . import local_model

    def run(model: str, messages: list[Message], optional_params: dict[str, Any]) -> Any:
        name = model.split("/", 1)[1] if model.startswith("local/") else model
        try:
            out = local_model.get(name).chat(messages, **optional_params)
        except ConfigError:
            raise
        except Exception as exc:  # a deterministic failure: a bad answer, not a transient one
            raise CustomLLMError(status_code=400, message=f"local model failed: {exc}") from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return ModelResponse(
            model=f"local/{name}",
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            ],
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            ),
        )

    class LocalProvider(CustomLLM):  # type: ignore[misc]
        def completion(self, *args: Any, **kwargs: Any) -> Any:
            return run(kwargs["model"], kwargs["messages"], kwargs.get("optional_params") or {})

        async def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(
                run, kwargs["model"], kwargs["messages"], kwargs.get("optional_params") or {}
            )

    return LocalProvider()
