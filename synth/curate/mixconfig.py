"""Mixer settings and the per-record rules that do not depend on the rest of the pool:
provenance (verified? lineage depth?) and stable anchor membership."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from synth.curate.decontam import DecontamConfig
from synth.errors import ConfigError
from synth.records import Record, content_hash

MIX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["real"],
    "properties": {
        "real": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "synthetic": {"type": "array", "items": {"type": "string"}},
        "eval_sets": {"type": "array", "items": {"type": "string"}},
        "anchor": {"type": "string"},
        "out": {"type": "string"},
        "strategy": {"enum": ["accumulate", "fixed_fraction"]},
        "max_synthetic_ratio": {"type": "number", "minimum": 0},
        "real_floor": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "allow_low_real": {"type": "boolean"},
        "real_fraction": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "target_tokens": {"type": "integer", "minimum": 1},
        "max_lineage_depth": {"type": "integer", "minimum": 1},
        "require_verified": {"type": "boolean"},
        "dedup_exact": {"type": "boolean"},
        "dedup_near": {"type": "boolean"},
        "near_threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "decontam_mode": {"enum": ["gpt3", "drop"]},
        "anchor_fraction": {"type": "number", "minimum": 0, "maximum": 0.5},
        "monitor": {"type": "boolean"},
        "monitor_sample_docs": {"type": "integer", "minimum": 10},
        "shard_records": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer"},
    },
}


@dataclass(frozen=True, kw_only=True)
class MixConfig:
    """Mixer settings (defaults: accumulate, real fraction >= 0.5); validated on construction."""

    strategy: str = "accumulate"
    max_synthetic_ratio: float = 1.0
    real_floor: float = 0.5
    allow_low_real: bool = False
    real_fraction: float | None = None
    target_tokens: int | None = None
    max_lineage_depth: int = 1
    require_verified: bool = True
    dedup_exact: bool = True
    dedup_near: bool = True
    near_threshold: float = 0.75
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    anchor_fraction: float = 0.05
    monitor: bool = True
    monitor_sample_docs: int = 2000
    shard_records: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in ("accumulate", "fixed_fraction"):
            raise ConfigError(
                "unknown mixing strategy",
                path="strategy",
                expected="accumulate (default) or fixed_fraction",
                found=self.strategy,
            )
        if not 0.0 < self.real_floor <= 1.0:
            raise ConfigError("real floor out of range", path="real_floor",
                              expected="a fraction in (0, 1]", found=self.real_floor)  # fmt: skip
        if self.real_floor < 0.25 and not self.allow_low_real:
            raise ConfigError(
                "real floor below 0.25",
                path="real_floor",
                expected=">= 0.25 (mix-0.10 plateaued 3-4x worse than mix-0.50 in the toys)",
                found=self.real_floor,
                fix="raise it, or pass allow_low_real (--allow-low-real) if you mean it",
            )
        cap = (1.0 - self.real_floor) / self.real_floor
        if self.strategy == "accumulate" and self.max_synthetic_ratio > cap + 1e-9:
            raise ConfigError(
                "max_synthetic_ratio would push real data below the floor",
                path="max_synthetic_ratio",
                expected=f"<= {cap:.3g} for real_floor={self.real_floor}",
                found=self.max_synthetic_ratio,
                fix="lower max_synthetic_ratio or the real floor",
            )
        frac = self.real_fraction
        if frac is not None and frac + 1e-9 < self.real_floor:
            raise ConfigError(
                "real_fraction is below the real floor",
                path="real_fraction",
                expected=f">= real_floor ({self.real_floor})",
                found=frac,
            )
        if self.shard_records < 1:
            raise ConfigError("shard_records must be >= 1", path="shard_records",
                              found=self.shard_records)  # fmt: skip

    def digest(self) -> str:
        return content_hash(asdict(self))


def lineage_depth(rec: Record) -> int:
    for key in ("lineage_depth", "generation"):
        v = rec.meta.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return 1


def provenance_reason(rec: Record, *, from_run: bool, config: MixConfig) -> str | None:
    """Why a synthetic record may not be mixed (None: it may). Records in a run's
    data.jsonl passed its chain; elsewhere a record needs passing verdicts."""
    verdicts = rec.meta.get("verdicts") or []
    if rec.meta.get("reject_reason") or any(not v.get("ok", False) for v in verdicts):
        return "unverified"
    if config.require_verified and not verdicts and not from_run:
        return "unverified"
    if lineage_depth(rec) > config.max_lineage_depth:
        return "lineage_too_deep"
    return None


def is_anchor(record_id: str, fraction: float) -> bool:
    """Stable anchor membership: a hash of the id alone (no seed, no pool size)."""
    h = int.from_bytes(
        hashlib.blake2b(b"anchor\x1f" + record_id.encode(), digest_size=8).digest(), "big"
    )
    return h < fraction * 2**64
