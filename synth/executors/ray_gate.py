"""One request/token budget for every shard of a run: the arithmetic of the rate actor.

A provider's limits (a recipe's `limits:` rpm / tpm, `SYNTH_LLM_RPM`, `SYNTH_LLM_TPM`) are
per account, not per process.
With S shards each pacing itself at the full RPM the provider would see S times too
many requests; dividing the limit by S wastes it whenever shards are idle or finished.
So the Ray executor starts one small actor per run that hands out send times: each shard
asks it before a request (one round trip) and sleeps until its slot. The slots are the
same even pacing and token bucket `synth.llm.ratelimit.Limiter` applies within a process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Budget:
    next_at: float = 0.0  # the earliest time the next request may go (RPM pacing)
    tokens: float | None = None  # the TPM bucket; may go into debt (reserved, not yet sent)
    tokens_at: float = 0.0


class Pacer:
    """Send times for requests, per model name. Pure arithmetic on a clock, so it is
    tested without Ray; `RateActor` wraps it."""

    def __init__(self) -> None:
        self._budgets: dict[str, _Budget] = {}

    def reserve(
        self, name: str, rpm: float | None, tpm: float | None, tokens: int, now: float
    ) -> float:
        """Book a request estimated at `tokens`; return how long the caller must wait."""
        b = self._budgets.setdefault(name, _Budget())
        wait = 0.0
        if rpm is not None:
            slot = max(now, b.next_at)
            b.next_at = slot + 60.0 / rpm
            wait = slot - now
        if tpm is not None:
            rate, capacity = tpm / 60.0, tpm / 6.0  # ten seconds of budget, as the Limiter
            self._refill(b, rate, capacity, now)
            assert b.tokens is not None
            need = min(float(tokens), capacity)  # a request bigger than the bucket: debt
            if b.tokens < need:
                wait = max(wait, (need - b.tokens) / rate)
            b.tokens -= tokens
        return wait

    def refund(self, name: str, tpm: float, tokens: int, now: float) -> None:
        """Correct an estimate with the real usage (`tokens` < 0 charges more)."""
        b = self._budgets.setdefault(name, _Budget())
        self._refill(b, tpm / 60.0, tpm / 6.0, now)
        assert b.tokens is not None
        b.tokens = min(tpm / 6.0, b.tokens + tokens)

    @staticmethod
    def _refill(b: _Budget, rate: float, capacity: float, now: float) -> None:
        if b.tokens is None:
            b.tokens, b.tokens_at = capacity, now
            return
        b.tokens = min(capacity, b.tokens + (now - b.tokens_at) * rate)
        b.tokens_at = now


class RateActor:
    """The Ray actor (made remote by the executor, so this module does not import Ray)."""

    def __init__(self) -> None:
        self.pacer = Pacer()
        self.requests = 0

    def reserve(self, name: str, rpm: float | None, tpm: float | None, tokens: int) -> float:
        self.requests += 1
        return self.pacer.reserve(name, rpm, tpm, tokens, time.monotonic())

    def refund(self, name: str, tpm: float, tokens: int) -> None:
        self.pacer.refund(name, tpm, tokens, time.monotonic())

    def stats(self) -> dict[str, int]:
        return {"requests": self.requests}
