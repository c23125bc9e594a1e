"""Admission control for model calls, per (provider, model), in our own layer.

litellm is only the transport; deciding *when* a request may go is done here, because it
has to see every call to one endpoint at once. Three gates, all in one `Limiter`:

- **concurrency**: at most `limit` requests in flight, where `limit` adapts (AIMD): it
  halves on a 429 (or drops to the level that was refused, if lower), grows back by one
  slot per success up to just below the level where the 429 happened, then probes upward
  by one slot per window of successes once the `Retry-After` cooldown has passed. A
  rate-limited endpoint so sees a handful of 429s instead of a storm, and the client
  settles just under the server's real limit.
- **requests/minute**: requests are paced evenly (one every 60/rpm s, no bursts), so a
  client RPM below the server's never trips a sliding-window limiter.
- **tokens/minute**: a token bucket (one second deep) charged with an estimate before the
  call and corrected with the real usage after it (it may go into debt for one large
  request, which later requests then wait out).
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimits:
    """Per-model admission limits. `None` means unlimited."""

    max_concurrency: int = 64
    rpm: float | None = None
    tpm: float | None = None
    adaptive: bool = True

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1 (got {self.max_concurrency})")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None (got {value})")


@dataclass(slots=True)
class Ticket:
    """One admitted request: what it reserved, so release can correct the books."""

    tokens: int
    admitted_at: float
    in_flight: int  # requests in flight including this one, when it was admitted


class Gate(Protocol):
    """Admission shared beyond this process. When one is installed (`set_gate`), it
    replaces every Limiter's own RPM pacing and TPM bucket, so a provider's limit holds
    across all the processes of a run: the Ray executor installs one backed by an actor.
    Concurrency stays per process."""

    async def admit(self, name: str, limits: RateLimits, tokens: int) -> None: ...

    def settle(self, name: str, limits: RateLimits, reserved: int, used: int) -> None: ...


_gate: Gate | None = None


def set_gate(gate: Gate | None) -> Gate | None:
    """Install (or with None remove) the process-wide gate; returns the previous one."""
    global _gate
    previous, _gate = _gate, gate
    return previous


class Limiter:
    """Concurrency (adaptive), RPM pacing and a TPM bucket for one (provider, model)."""

    def __init__(self, limits: RateLimits, *, name: str = "") -> None:
        self.limits = limits
        self.name = name  # the model: what a shared gate keys its budget by
        self.limit = float(limits.max_concurrency)
        self.in_flight = 0
        self.rate_limited = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._known_bad: int | None = None  # concurrency at which the endpoint said 429
        self._last_decrease = float("-inf")
        self._cooldown_until = 0.0
        self._next_request_at = 0.0
        self._tokens = float(self._token_capacity())
        self._tokens_at = time.monotonic()

    # -- admission

    async def acquire(self, tokens: int = 0) -> Ticket:
        """Wait until a request estimated at `tokens` (input + expected output) may go."""
        gate = _gate
        if gate is not None and (self.limits.rpm is not None or self.limits.tpm is not None):
            await gate.admit(self.name, self.limits, tokens)
        elif self.limits.rpm is not None:
            await self._pace()
        if self.limits.tpm is not None and gate is None:
            await self._take_tokens(tokens)
        if self.in_flight >= int(self.limit) or self._waiters:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self._release_slot()  # we were handed a slot we will not use
                elif fut in self._waiters:
                    self._waiters.remove(fut)
                raise
        else:
            self.in_flight += 1
        return Ticket(tokens, time.monotonic(), self.in_flight)

    def release(
        self,
        ticket: Ticket,
        *,
        tokens: int | None = None,
        rate_limited: bool = False,
        retry_after: float | None = None,
        ok: bool = True,
    ) -> None:
        """Give the slot back; `tokens` is the real usage (corrects the TPM estimate)."""
        if self.limits.tpm is not None and tokens is not None:
            if _gate is not None:
                _gate.settle(self.name, self.limits, ticket.tokens, tokens)
            else:
                self._tokens += ticket.tokens - tokens
        if self.limits.adaptive:
            if rate_limited:
                self._on_rate_limited(ticket, retry_after)
            elif ok:
                self._on_success()
        elif rate_limited:
            self.rate_limited += 1
        self._release_slot()

    # -- AIMD

    def _on_rate_limited(self, ticket: Ticket, retry_after: float | None) -> None:
        self.rate_limited += 1
        now = time.monotonic()
        bad = max(1, ticket.in_flight - 1)
        if ticket.admitted_at < self._last_decrease:
            # Sent before we last backed off: the same congestion episode. It only
            # sharpens our estimate of where the endpoint's limit is.
            if self._known_bad is not None and bad < self._known_bad:
                self._known_bad = bad
                self.limit = max(1.0, min(self.limit, float(bad)))
            return
        self._known_bad = bad
        # Halve; and never stay above the level that was just refused (a burst far past
        # the endpoint's limit would otherwise take several halvings and 429 waves).
        self.limit = max(1.0, min(self.limit / 2, float(bad)))
        self._last_decrease = now
        self._cooldown_until = now + (retry_after if retry_after is not None else 1.0)

    def _on_success(self) -> None:
        ceiling = float(self.limits.max_concurrency)
        if self.limit >= ceiling:
            return
        if self._known_bad is not None and self.limit < self._known_bad - 1:
            self.limit = min(self.limit + 1, self._known_bad - 1.0)  # fast recovery
        elif time.monotonic() >= self._cooldown_until:
            self.limit += 1 / max(self.limit, 1.0)  # additive probe: +1 per window
        self.limit = min(self.limit, ceiling)
        self._wake()

    # -- slots

    def _release_slot(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(None)

    # -- RPM and TPM

    async def _pace(self) -> None:
        assert self.limits.rpm is not None
        interval = 60.0 / self.limits.rpm
        now = time.monotonic()
        slot = max(now, self._next_request_at)
        self._next_request_at = slot + interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def _token_capacity(self) -> float:
        # One second of the budget: a burst never exceeds the per-second rate a provider
        # derives from its per-minute limit by more than a second's worth; a request
        # bigger than that still goes, by taking the bucket into debt.
        return (self.limits.tpm or 0) / 60

    async def _take_tokens(self, tokens: int) -> None:
        assert self.limits.tpm is not None
        rate = self.limits.tpm / 60.0
        capacity = self._token_capacity()
        need = min(float(tokens), capacity)  # a request bigger than the bucket goes into debt
        while True:
            now = time.monotonic()
            self._tokens = min(capacity, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens >= need:
                self._tokens -= tokens
                return
            await asyncio.sleep((need - self._tokens) / rate)

    def snapshot(self) -> dict[str, float | int]:
        return {
            "limit": round(self.limit, 2),
            "in_flight": self.in_flight,
            "429": self.rate_limited,
        }
