"""Choosing the training set and cutting it into shards, with the real floor in each.

Pure planning on (key, tokens) pairs, so the invariants can be property-tested: under
`accumulate` every real item is selected; synthetic tokens never exceed
`max_synthetic_ratio` x real tokens; every shard's real token fraction is >= the floor;
and the real side of the plan does not depend on the seed (only which synthetic items are
drawn does). A synthetic item that fits in no shard without breaking its floor is left
out and counted, never squeezed in.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from synth.context import derive_seed
from synth.errors import SynthError


@dataclass(frozen=True, slots=True)
class Item:
    key: str
    tokens: int


@dataclass
class Shard:
    real_tokens: int = 0
    synthetic_tokens: int = 0
    real: list[int] = field(default_factory=list)
    synthetic: list[int] = field(default_factory=list)

    @property
    def real_fraction(self) -> float:
        total = self.real_tokens + self.synthetic_tokens
        return self.real_tokens / total if total else 1.0


@dataclass
class Plan:
    shards: list[Shard]
    real_selected: int
    synthetic_budget: float
    dropped_for_floor: int = 0
    synthetic_over_budget: int = 0


def _stable(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def plan(
    real: Sequence[Item],
    synthetic: Sequence[Item],
    *,
    strategy: str,
    real_floor: float,
    max_synthetic_ratio: float,
    real_fraction: float | None,
    target_tokens: int | None,
    shard_records: int,
    seed: int,
) -> Plan:
    """Select and shard (module docstring). Raises SynthError when the real pool cannot
    meet the floor for `target_tokens`, instead of quietly emitting less real data."""
    if not real:
        raise SynthError(
            "the real pool is empty after anchor carving and dedup: synth never emits a "
            "synthetic-only training set (that is the 'replace' regime that collapses). "
            "Add real data (--real)."
        )
    real_tokens = sum(i.tokens for i in real)
    order = sorted(range(len(real)), key=lambda i: (_stable(real[i].key), i))
    if strategy == "accumulate":
        chosen = order
        budget = max_synthetic_ratio * real_tokens
        if target_tokens is not None:
            if real_tokens < real_floor * target_tokens:
                raise _floor_error(real_tokens, real_floor, target_tokens)
            budget = min(budget, max(0.0, target_tokens - real_tokens))
    else:
        frac = real_fraction if real_fraction is not None else real_floor
        if target_tokens is not None:
            need = frac * target_tokens
            if real_tokens < need:
                raise _floor_error(real_tokens, frac, target_tokens)
            seeded = sorted(range(len(real)), key=lambda i: (derive_seed(seed, real[i].key), i))
            chosen, got = [], 0
            for i in seeded:
                if got >= need:
                    break
                chosen.append(i)
                got += real[i].tokens
            chosen.sort(key=lambda i: (_stable(real[i].key), i))
        else:
            chosen = order
        budget = sum(real[i].tokens for i in chosen) * (1.0 - frac) / frac
    per_real = 1.0 + min(max_synthetic_ratio, (1.0 - real_floor) / real_floor)
    n_shards = max(1, min(len(chosen), math.ceil(len(chosen) * per_real / shard_records)))
    shards = [Shard() for _ in range(n_shards)]
    heap = [(0, k) for k in range(n_shards)]  # least real tokens first
    for i in chosen:
        tokens, k = heapq.heappop(heap)
        shards[k].real.append(i)
        shards[k].real_tokens += real[i].tokens
        heapq.heappush(heap, (tokens + real[i].tokens, k))
    result = Plan(shards, len(chosen), budget)
    _place_synthetic(synthetic, shards, budget, real_floor, seed, result)
    return result


def _place_synthetic(
    synthetic: Sequence[Item],
    shards: list[Shard],
    budget: float,
    floor: float,
    seed: int,
    result: Plan,
) -> None:
    """Draw synthetic items in seeded order (uniform over generations) while the budget
    lasts; put each where the floor leaves most room."""
    ratio = (1.0 - floor) / floor
    room = [(-(s.real_tokens * ratio), k) for k, s in enumerate(shards)]
    heapq.heapify(room)
    spent = 0
    for i in sorted(range(len(synthetic)), key=lambda i: (derive_seed(seed, synthetic[i].key), i)):
        t = synthetic[i].tokens
        if spent + t > budget + 1e-9:
            result.synthetic_over_budget += 1
            continue
        neg_room, k = room[0]
        if -neg_room + 1e-9 < t:
            result.dropped_for_floor += 1
            continue
        heapq.heapreplace(room, (neg_room + t, k))
        shards[k].synthetic.append(i)
        shards[k].synthetic_tokens += t
        spent += t


def _floor_error(real_tokens: int, floor: float, target: int) -> SynthError:
    return SynthError(
        f"the real pool has {real_tokens} tokens but a real share of {floor:.2f} of "
        f"target_tokens={target} needs {math.ceil(floor * target)}: lower target_tokens, "
        "add real data, or lower the real fraction (not below the floor)"
    )
