"""What model calls used and cost, and the cap that stops a run before it spends too much.

Counts are kept per model and are all plain numbers, so the usage of the processes of a
resumed or sharded run adds up field by field. The budget is conservative: a call is
admitted only if the run's spend, plus what calls already on their way may still spend,
plus this call's worst case (its prompt and `max_tokens`), stays within the cap. A run
therefore stops *before* passing it, and once a call is refused every later one is too,
so a small call cannot slip in after a larger one was turned away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from synth.errors import BudgetExceeded

_COUNTS = ("calls", "requests", "cache_hits", "input_tokens", "output_tokens", "cost_usd")
_EVENTS = ("failures", "rate_limited", "retries", "reasks")


@dataclass(slots=True)
class Usage:
    """One model's counters. `calls` are answers asked for (cache hits included);
    `requests` are attempts actually sent, retries included."""

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

    def add(self, other: Usage) -> None:
        for f in fields(self):
            if f.name == "failure_reasons":
                self.failure_reasons.update(other.failure_reasons)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in (*_COUNTS, *_EVENTS)}
        out["total_tokens"] = self.input_tokens + self.output_tokens
        out["cost_usd"] = round(self.cost_usd, 8)
        out["failure_reasons"] = dict(sorted(self.failure_reasons.items()))
        return out


def report(by_model: dict[str, Usage]) -> dict[str, Any]:
    """The manifest's `llm` section: totals, plus the same figures per model."""
    total = Usage()
    for u in by_model.values():
        total.add(u)
    return {**total.as_dict(), "by_model": {m: u.as_dict() for m, u in sorted(by_model.items())}}


class SpendCap:
    """`max_cost_usd` and `max_tokens` for what is left of a run (None: no cap)."""

    def __init__(self, *, max_cost_usd: float | None = None, max_tokens: int | None = None) -> None:
        self.max_cost_usd, self.max_tokens = max_cost_usd, max_tokens
        self.spent_cost, self.spent_tokens = 0.0, 0
        self._reserved_cost, self._reserved_tokens = 0.0, 0
        self.stopped_by: str | None = None

    def reserve(self, cost: float, tokens: int) -> None:
        """Admit a call estimated at `cost` and `tokens`, or raise BudgetExceeded."""
        if self.stopped_by is None:
            if self.max_tokens is not None and (
                self.spent_tokens + self._reserved_tokens + tokens > self.max_tokens
            ):
                self.stopped_by = "max_tokens"
            elif self.max_cost_usd is not None and (
                self.spent_cost + self._reserved_cost + cost > self.max_cost_usd
            ):
                self.stopped_by = "max_cost_usd"
        if self.stopped_by is not None:
            spent = (
                f"${self.spent_cost:.4f} of ${self.max_cost_usd}"
                if self.stopped_by == "max_cost_usd"
                else f"{self.spent_tokens} of {self.max_tokens} tokens"
            )
            raise BudgetExceeded(f"LLM budget reached: {spent} spent", reason=self.stopped_by)
        self._reserved_cost += cost
        self._reserved_tokens += tokens

    def release(self, cost: float, tokens: int) -> None:
        """The call a reservation was for is over (answered or not)."""
        self._reserved_cost -= cost
        self._reserved_tokens -= tokens

    def spend(self, cost: float, tokens: int) -> None:
        self.spent_cost += cost
        self.spent_tokens += tokens
