"""Retries, declared once: tenacity, on transient errors only, honouring `Retry-After`.

A transient error is a 429, a 5xx, a timeout or a dropped connection (`LLMTransientError`,
which the client raises after wrapping litellm's exceptions). Everything else, including
an answer that does not parse, is not retried here. litellm's and the OpenAI SDK's own
retries are switched off by the client, so this is the only retry policy in play.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synth.errors import LLMTransientError


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """`wait` is any tenacity wait strategy; the default honours `Retry-After` and
    otherwise backs off exponentially with full jitter. Tests pass `tenacity.wait_none()`."""

    max_attempts: int = 6
    timeout: float = 120.0  # seconds per attempt
    wait: Any = None
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


def retrying(policy: RetryPolicy, *, on_retry: Callable[[Any], None] | None = None) -> Any:
    """A tenacity `AsyncRetrying` for one call under `policy`."""
    from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

    return AsyncRetrying(
        retry=retry_if_exception_type(LLMTransientError),
        stop=stop_after_attempt(policy.max_attempts),
        wait=policy.wait if policy.wait is not None else default_wait(policy.max_wait),
        before_sleep=on_retry,
        reraise=True,
    )


def default_wait(max_wait: float) -> Callable[[Any], float]:
    """Wait what the server asked (plus up to 10% jitter, so retries do not arrive
    together); without a `Retry-After`, exponential backoff with full jitter."""
    from tenacity import wait_random_exponential

    backoff = wait_random_exponential(multiplier=0.5, max=max_wait)

    def wait(state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return float(min(max_wait, after * (1 + 0.1 * random.random())))
        return float(backoff(state))

    return wait


def retry_after(*headers: Mapping[str, str] | None) -> float | None:
    """Seconds a server asked us to wait (`retry-after-ms`, or `retry-after` as seconds or
    an HTTP date), from the first header map that says; None if none does."""
    for source in headers:
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
