"""The small context every step and verifier receives, and per-record determinism."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synth.llm.types import LLM


@dataclass(frozen=True, slots=True)
class Context:
    """What a step may use besides its records. Kept small on purpose.

    `stats` is the run's counter table (it ends up in the manifest); `llm` is the LLM seam
    (`await ctx.llm.complete(messages, model=..., ...)`, None for rule-based runs);
    `settings` holds `--set` overrides and recipe variables; `base_dir` resolves relative
    paths in the recipe; `start_index` is where a resumed source restarts."""

    seed: int
    recipe_name: str = "adhoc"
    recipe_hash: str = ""
    base_dir: Path = Path(".")
    run_dir: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    llm: LLM | None = None
    start_index: int = 0
    shard: int = 0
    shards: int = 1


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from the run seed and any labels (record index, step name, ...).
    Never a global seed: each record owns its randomness, so order and concurrency
    cannot change the output."""
    key = "\x1f".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def rng_for(seed: int, *parts: object) -> random.Random:
    return random.Random(derive_seed(seed, *parts))
