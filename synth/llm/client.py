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
import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from synth.errors import (
    BudgetExceeded,
    ConfigError,
    LLMError,
    LLMResponseError,
    LLMTransientError,
    LLMUnavailable,
    SynthError,
)
from synth.llm import litellm
from synth.llm.accounting import SpendCap, Usage, report
from synth.llm.cache import FILENAME, Entry, ResponseCache, request_key
from synth.llm.http import HTTPTransport, RefusedParam, speaks_openai
from synth.llm.limits import ModelLimits, Table, per_model
from synth.llm.limits import resolve as resolve_limits
from synth.llm.ratelimit import Limiter, RateLimits
from synth.llm.retrying import RetryPolicy, retrying
from synth.llm.structured import complete_structured, native_format
from synth.llm.trace import TraceSink
from synth.llm.types import Completion, Message, logprobs_of
from synth.redaction import secret_values

__all__ = ["Completion", "LLMClient", "RetryPolicy", "client_for_run"]

# Passed to litellm but not part of what determines the answer: kept out of the cache key.
_NOT_IN_KEY = frozenset(
    {"timeout", "api_key", "api_base", "base_url", "api_version", "extra_headers"}
)
_DRAIN_S = 30.0  # how long closing waits for answers already on their way
_DEFAULT_OUTPUT_TOKENS = 256  # reserved against budgets when a call sets no max_tokens
_LOGPROB_PARAMS = ("logprobs", "top_logprobs")


class LLMClient:
    """The run's model client. One per run; safe to share between concurrent steps."""

    # Asked for `logprobs=True`, it sends the request to providers that take it and hands
    # back `Completion.logprobs`; for others (local/, anthropic/, ...) it drops the request,
    # and the completion has none.
    returns_logprobs = True

    def __init__(
        self,
        *,
        model: str | None = None,
        cache: ResponseCache | None = None,
        limits: RateLimits | None = None,
        retry: RetryPolicy | None = None,
        model_limits: dict[str, ModelLimits] | None = None,
        transport: str = "litellm",
        structured: str = "auto",
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        reask_limit: int = 2,
        litellm_params: dict[str, Any] | None = None,
        trace: TraceSink | None = None,
    ) -> None:
        self.model = model
        self.trace = trace  # every call, as asked and answered (`synth.llm.trace`)
        self._tracing = 0  # calls that will still write a trace line
        self.cache = cache
        self.limits = limits or RateLimits()  # for models without an entry in model_limits
        self.retry = retry or RetryPolicy()
        self.model_limits = dict(model_limits or {})
        self.transport = transport  # for models without an entry in model_limits
        self.structured = structured  # likewise: "auto", "native" or "prompt"
        self.budget = SpendCap(max_cost_usd=max_cost_usd, max_tokens=max_tokens)
        self.reask_limit = reask_limit
        self.litellm_params = dict(litellm_params or {})
        self._secrets = secret_values([self.litellm_params.get("api_key")])
        self._usage: dict[str, Usage] = {}
        self._limiters: dict[tuple[str, str], Limiter] = {}
        self._inflight: dict[str, asyncio.Future[Completion]] = {}
        self._down: LLMError | None = None
        self._no_logprobs: set[str] = set()  # models whose provider refused them
        self._http: HTTPTransport | None = None
        # Calls still on their way when their record was cancelled (a run that reached n):
        # the provider answers and bills them anyway, so they finish, are cached and are
        # counted; `aclose` waits for them.
        self._late: set[asyncio.Task[Completion]] = set()
        # Called with (model, usage of one request round) as each one ends: the run's
        # ledger, so that what was paid survives a killed process (synth.runner.ledger).
        self.journal: Callable[[str, Usage], None] | None = None

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
        raised: int | None = None
        choices = params.pop("choices", None)
        if schema is None:
            fmt = self._choice_format(model, choices)
            c = await self._call(model, messages, params, n_index, fmt)
            parsed, reasks, parts = None, 0, [c]
        else:
            parts = []

            async def call(
                msgs: list[Message], fmt: dict[str, Any] | None, max_tokens: int | None
            ) -> Completion:
                sent = params if max_tokens is None else {**params, "max_tokens": max_tokens}
                part = await self._call(model, msgs, sent, n_index, fmt)
                parts.append(part)
                return part

            try:
                out = await complete_structured(
                    call,
                    messages,
                    schema,
                    native=self._native_schema(model),
                    reask_limit=self.reask_limit,
                    max_tokens=params.get("max_tokens"),
                )
            except LLMResponseError:
                self._stats(model).failure_reasons["invalid_json"] += 1
                self._stats(model).failures += 1
                self._stats(model).reasks += max(0, len(parts) - 1)  # re-asks it did make
                raise
            parsed, c, reasks = out.value, out.completion, out.reasks
            raised = out.max_tokens_raised_to
            self._stats(model).reasks += reasks
        return replace(
            c,
            parsed=parsed,
            template_hash=template_hash,
            n_index=n_index,
            reasks=reasks,
            max_tokens_raised_to=raised,
            cached=all(p.cached for p in parts),
            input_tokens=sum(p.input_tokens for p in parts),
            output_tokens=sum(p.output_tokens for p in parts),
            cost_usd=sum(p.cost_usd for p in parts),
            latency_s=time.perf_counter() - started,
            call_ids=tuple(i for p in parts for i in p.call_ids),
        )

    def usage(self) -> dict[str, Any]:
        """Calls, cache hits, tokens, cost, failures and 429s, in total and per model.
        Every value is a count, so the usage of a resumed run's processes adds up."""
        return report(self._usage)

    @property
    def stopped_by(self) -> str | None:
        """The cap that stopped this client (`max_cost_usd`, `max_tokens`), if one did."""
        return self.budget.stopped_by

    async def aclose(self, *, drain: bool = True) -> None:
        """Close the client. With `drain`, first let calls already sent finish (bounded by
        their time limit), so an answer that is paid for is also cached and counted."""
        if self._late:
            if drain:
                await asyncio.wait(set(self._late), timeout=_DRAIN_S)
            for task in self._late:
                task.cancel()
            await asyncio.gather(*self._late, return_exceptions=True)
            await asyncio.sleep(0)  # their done-callbacks (which cache them) run first
        if self.trace is not None:
            # Calls cancelled as the run stopped record themselves on their next loop turn.
            for _ in range(1000):
                if not self._tracing:
                    break
                await asyncio.sleep(0)
            self.trace.close()
        if self.cache is not None:
            self.cache.close()
        if self._http is not None:
            await self._http.aclose()

    # -- one plain call: traced; cache, single-flight, budget, admission, retries

    async def _call(
        self,
        model: str,
        messages: list[Message],
        params: dict[str, Any],
        n_index: int,
        response_format: dict[str, Any] | None,
    ) -> Completion:
        if self.trace is None:
            return await self._ask(model, messages, params, n_index, response_format)
        started = time.perf_counter()
        sent: list[Any] = [{}, ""]  # filled in by _ask: the parameters sent, the cache key
        self._tracing += 1
        try:
            c = await self._ask(model, messages, params, n_index, response_format, sent)
        except (Exception, asyncio.CancelledError) as exc:
            # A call cancelled in flight (the run reached `n` meanwhile) was still sent and
            # may have been paid for; a spent cap is the run's stop, not a call.
            if not isinstance(exc, BudgetExceeded):
                self._trace(model, messages, sent, n_index, started, error=exc)
            raise
        finally:
            self._tracing -= 1
        call_id = self._trace(model, messages, sent, n_index, started, completion=c)
        return replace(c, call_ids=(call_id,))

    def _trace(self, model: str, messages: list[Message], sent: list[Any], n_index: int,
               started: float, **outcome: Any) -> str:  # fmt: skip
        assert self.trace is not None
        params = {k: v for k, v in sent[0].items() if k not in _NOT_IN_KEY}
        return self.trace.record(
            model=model, messages=messages, params=params, n_index=n_index, key=sent[1],
            latency_s=time.perf_counter() - started, secrets=self._secrets, **outcome,
        )  # fmt: skip

    async def _ask(
        self,
        model: str,
        messages: list[Message],
        params: dict[str, Any],
        n_index: int,
        response_format: dict[str, Any] | None,
        sent: list[Any] | None = None,
    ) -> Completion:
        send = {k: v for k, v in params.items() if v is not None}
        if not (send.get("logprobs") and self._takes_logprobs(model)):
            # Not asked, or asked of a provider without them: not sent, not in the key.
            send = {k: v for k, v in send.items() if k not in _LOGPROB_PARAMS}
        if response_format is not None:
            send["response_format"] = response_format
        key = request_key(
            model, messages, {k: v for k, v in send.items() if k not in _NOT_IN_KEY}, n_index
        )
        if sent is not None:
            sent[:] = [send, key]
        u = self._stats(model)
        u.calls += 1
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                u.cache_hits += 1
                return _from_entry(hit, model)
        pending = self._inflight.get(key)
        if pending is not None:  # the same request is already on its way: share its answer
            try:
                shared = await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # we were cancelled ourselves
                u.calls -= 1  # its owner was cancelled, not us: ask ourselves
                return await self._ask(model, messages, params, n_index, response_format, sent)
            u.cache_hits += 1
            return replace(shared, cached=True, cost_usd=0.0)
        if model.startswith("local/") and "seed" not in send:
            # llama.cpp samples with a random seed unless told; a seed drawn from the key
            # makes a local answer a function of the request, cached or not.
            send = {**send, "seed": int(key[:8], 16)}
        # The request runs as its own task: if this caller is cancelled (its record is no
        # longer needed), the answer still arrives, is billed, cached and counted, and
        # callers sharing the key keep waiting on it instead of asking again.
        fetch = asyncio.ensure_future(self._fetch(model, messages, send, u))
        self._inflight[key] = fetch
        fetch.add_done_callback(functools.partial(self._fetched, key, model))
        try:
            c = await asyncio.shield(fetch)
        except asyncio.CancelledError:
            if model.startswith("local/"):
                fetch.cancel()  # nobody bills it, and queued local calls would run serially
            elif not fetch.done():
                self._late.add(fetch)
            raise
        self._store(key, model, c)
        return c

    def _store(self, key: str, model: str, c: Completion) -> None:
        if self.cache is not None:
            self.cache.put(
                key,
                Entry(model, c.text, c.input_tokens, c.output_tokens, c.cost_usd,
                      c.finish_reason, c.logprobs),
            )  # fmt: skip

    def _fetched(self, key: str, model: str, task: asyncio.Task[Completion]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        late = task in self._late
        self._late.discard(task)
        if task.cancelled() or task.exception() is not None:  # retrieved: sharers re-raise it
            return
        if late:  # nobody awaits it any more: the cache is where its answer goes
            with contextlib.suppress(Exception):  # the cache may already be closed
                self._store(key, model, task.result())

    async def _fetch(
        self, model: str, messages: list[Message], send: dict[str, Any], total: Usage
    ) -> Completion:
        if self._down is not None:
            raise self._down
        u = Usage()  # this round's counts: added to the model's and journaled at the end
        try:
            return await self._fetch_counted(model, messages, send, u)
        finally:
            total.add(u)
            if self.journal is not None and (u.requests or u.failures):
                self.journal(model, u)

    async def _fetch_counted(
        self, model: str, messages: list[Message], send: dict[str, Any], u: Usage
    ) -> Completion:
        est_in = sum(len(str(m.get("content") or "")) for m in messages) // 4 + 4
        est_out = int(
            send.get("max_tokens") or send.get("max_completion_tokens") or _DEFAULT_OUTPUT_TOKENS
        )
        price_in, price_out = litellm.price(model)
        est_cost, est_tokens = est_in * price_in + est_out * price_out, est_in + est_out
        limiter = self._limiter(model)
        policy = self._retry(model)

        def count_retry(state: Any) -> None:
            u.retries += 1

        try:
            async for attempt in retrying(policy, on_retry=count_retry):
                with attempt:
                    ticket = await limiter.acquire(est_tokens)
                    try:
                        # Reserved only once admitted, so calls queued behind the limiter
                        # do not use up the budget of calls actually on their way.
                        self.budget.reserve(est_cost, est_tokens)
                    except BudgetExceeded:
                        limiter.release(ticket, ok=False)
                        raise
                    try:
                        c = await self._transport(model, messages, send)
                    except LLMTransientError as exc:
                        u.requests += 1  # sent; the provider (or the network) said no
                        limited = exc.status == 429
                        u.rate_limited += limited
                        limiter.release(
                            ticket, rate_limited=limited, retry_after=exc.retry_after, ok=False
                        )
                        raise
                    except SynthError:  # a refusal (400, 401, ...): sent and answered
                        u.requests += 1
                        limiter.release(ticket, ok=False)
                        raise
                    except BaseException:  # cancelled before an answer came: not counted
                        limiter.release(ticket, ok=False)
                        raise
                    finally:
                        self.budget.release(est_cost, est_tokens)
                    u.requests += 1
                    limiter.release(ticket, tokens=c.total_tokens)
        except BudgetExceeded:
            raise
        except LLMError as exc:
            u.failures += 1
            u.failure_reasons[_reason(exc)] += 1
            if isinstance(exc, LLMTransientError):
                # Every attempt failed: that is about the endpoint, not the record. The run
                # stops (calls still queued fail at once) and writes nothing for the
                # record, so the same command resumes it with the same output.
                self._down = LLMUnavailable(
                    f"{model}: the endpoint failed {policy.max_attempts} attempts in a row "
                    f"(last: {exc}); the run stops here and keeps what it wrote. Check the "
                    "endpoint, then run the same command again to resume.",
                    status=exc.status,
                )
                raise self._down from exc
            raise
        if not c.cost_usd and (price_in or price_out):
            c = replace(c, cost_usd=c.input_tokens * price_in + c.output_tokens * price_out)
        self.budget.spend(c.cost_usd, c.total_tokens)
        u.input_tokens += c.input_tokens
        u.output_tokens += c.output_tokens
        u.cost_usd += c.cost_usd
        return c

    # -- transports: litellm, or for OpenAI-compatible endpoints a direct one

    async def _transport(
        self, model: str, messages: list[Message], send: dict[str, Any]
    ) -> Completion:
        ask = self._ask_http if self._uses_http(model) else self._ask_litellm
        try:
            return await ask(model, messages, send)
        except RefusedParam:
            if not send.get("logprobs"):
                raise
            # The provider's model map said yes but the endpoint says no: ask again
            # without them, and do not send them to this model again.
            self._no_logprobs.add(model)
            return await ask(
                model, messages, {k: v for k, v in send.items() if k not in _LOGPROB_PARAMS}
            )

    async def _ask_litellm(
        self, model: str, messages: list[Message], send: dict[str, Any]
    ) -> Completion:
        timeout = self._retry(model).timeout
        return await litellm.ask(model, messages, send, timeout, self.litellm_params, self._secrets)

    async def _ask_http(
        self, model: str, messages: list[Message], send: dict[str, Any]
    ) -> Completion:
        if self._http is None:
            p = self.litellm_params
            self._http = HTTPTransport(
                api_base=p.get("api_base") or p.get("base_url"),
                api_key=p.get("api_key"),
                extra_headers=p.get("extra_headers"),
                secrets=self._secrets,
            )
        started = time.perf_counter()
        a = await self._http.chat(model, messages, send, time_limit=self._retry(model).timeout)
        litellm.after_first_call()  # the price came from litellm's map: its objects are loaded
        return Completion(
            text=a.text,
            model=model,
            input_tokens=a.input_tokens,
            output_tokens=a.output_tokens,
            cost_usd=0.0,  # priced from litellm's map by _fetch
            latency_s=time.perf_counter() - started,
            finish_reason=a.finish_reason,
            logprobs=logprobs_of(a.logprobs) if send.get("logprobs") else None,
        )

    def _uses_http(self, model: str) -> bool:
        own = self.model_limits.get(model)
        transport = own.transport if own is not None else self.transport
        return transport == "http" and speaks_openai(model)

    def _takes_logprobs(self, model: str) -> bool:
        """Whether to send a logprobs request to this model's provider."""
        if model.startswith("local/"):
            # llama.cpp returns them only from a model loaded with logits_all=True, which
            # slows every call; local judges use the parsed answer instead.
            return False
        if model in self._no_logprobs:
            return False
        return litellm.takes_logprobs(model)

    def _choice_format(self, model: str, choices: Any) -> dict[str, Any] | None:
        """`choices=("yes", "no")` on a plain call: a local model decodes under a grammar
        that allows only those answers (as a JSON string, `"yes"`), so a 135M judge cannot
        answer "- yes" or ramble. API models get the prompt alone: their answers are
        short already, and a top-level enum is not a schema every provider accepts."""
        if not choices or not model.startswith("local/"):
            return None
        return native_format({"enum": [str(c) for c in choices]})

    def _native_schema(self, model: str) -> bool:
        if model.startswith("local/"):
            return True  # llama.cpp enforces the schema with a grammar
        own = self.model_limits.get(model)
        structured = own.structured if own is not None else self.structured
        if structured != "auto":  # the recipe's `limits:` says so for this model
            return structured == "native"
        try:
            return litellm.supports_response_schema(model)
        except Exception:  # unknown to litellm's model map: instruct + extract instead
            return False

    def _limiter(self, model: str) -> Limiter:
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        key = (provider, model)
        limiter = self._limiters.get(key)
        if limiter is None:
            own = self.model_limits.get(model)
            limits = own.limits if own is not None else self.limits
            if provider == "local":  # one llama.cpp context: queue here, not in threads
                limits = replace(limits, max_concurrency=1, adaptive=False)
            limiter = self._limiters[key] = Limiter(limits, name=model)
        return limiter

    def _retry(self, model: str) -> RetryPolicy:
        own = self.model_limits.get(model)
        return own.retry if own is not None else self.retry

    def _stats(self, model: str) -> Usage:
        u = self._usage.get(model)
        if u is None:
            u = self._usage[model] = Usage()
        return u


def check_credentials(models: frozenset[str] | set[str]) -> None:
    """Fail before the run starts, naming the variable, when a model has no credentials:
    a missing key is a configuration error, not something to retry for a minute."""
    for model in sorted(models):
        missing = litellm.missing_credentials(model)
        if missing:
            raise ConfigError(
                f"no credentials for {model}",
                path="model",
                expected=f"{' or '.join(missing)} set in the environment",
                found="not set",
                fix=f"export {missing[0]}=..., or use the embedded model: --model local/smollm2",
            )


def client_for_run(
    *,
    model: str | None,
    state_dir: str | Path,
    no_cache: bool = False,
    max_cost_usd: float | None = None,
    max_tokens: int | None = None,
    limits: RateLimits | None = None,
    retry: RetryPolicy | None = None,
    limits_table: Table | None = None,
    litellm_params: dict[str, Any] | None = None,
    trace_to: str | Path | None = None,
) -> LLMClient:
    """The client a run uses. RateLimits and retries per model come from the recipe's
    `limits:` table (`limits_table`), each setting overridden for the run by its
    environment variable (`SYNTH_LLM_MAX_CONCURRENCY`, `SYNTH_LLM_RPM`, `SYNTH_LLM_TPM`,
    `SYNTH_LLM_TIMEOUT`, `SYNTH_LLM_MAX_ATTEMPTS`; see `synth.llm.limits`); `limits` and
    `retry` replace those of models the table does not name. Endpoints and keys are
    litellm's usual variables (`OPENAI_API_KEY`, `OPENAI_API_BASE`, ...). `trace_to` is
    the file every call is traced to (`synth.llm.trace`), None for no trace."""
    fallback = resolve_limits(limits_table)
    cache = None if no_cache else ResponseCache(Path(state_dir) / FILENAME)
    return LLMClient(
        model=model,
        cache=cache,
        limits=limits or fallback.limits,
        retry=retry or fallback.retry,
        model_limits=per_model(limits_table),
        transport=fallback.transport,
        structured=fallback.structured,
        max_cost_usd=max_cost_usd,
        max_tokens=max_tokens,
        litellm_params=litellm_params,
        trace=TraceSink(trace_to) if trace_to is not None else None,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, LLMTransientError):
        return "rate_limited" if exc.status == 429 else "transient"
    return "invalid_response"


def _from_entry(e: Entry, model: str) -> Completion:
    return Completion(
        text=e.text,
        model=model,
        input_tokens=e.input_tokens,
        output_tokens=e.output_tokens,
        cost_usd=0.0,  # this run paid nothing for it
        cached=True,
        finish_reason=e.finish_reason,
        logprobs=e.logprobs,
    )
