"""`dedup` and `decontaminate`: the mixer's filters as recipe steps, on the run's stream.

    - use: dedup                   # exact (normalised text) + near (MinHash, 14 x 8)
      near: true
      threshold: 0.75
      against: [data/real.jsonl]   # optional: records that count as already kept
    - use: decontaminate
      eval_sets: [evals/]          # files or folders; each file is one eval set
      mode: gpt3                   # or drop

Both act record by record as the stream flows (no buffering, so a slow LLM source is
never held up) and count what they remove in the run's stats: `dedup_exact`,
`dedup_near`, `decontam_hits_<eval set>`, `decontam_dropped`, `decontam_cut`. State is
per run: the dedup index holds what this run (and `against`) kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.context import Context
from synth.records import Record
from synth.registry import step

_PATHS = {"type": "array", "items": {"type": "string"}, "minItems": 1}

DEDUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "exact": {"type": "boolean"},
        "near": {"type": "boolean"},
        "threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "against": _PATHS,
    },
}

DECONTAM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["eval_sets"],
    "additionalProperties": False,
    "properties": {
        "eval_sets": _PATHS,
        "mode": {"enum": ["gpt3", "drop"]},
        "n": {"type": "integer", "minimum": 2},
        "short_n": {"type": "integer", "minimum": 2},
        "short_tokens": {"type": "integer", "minimum": 1},
    },
}


def _path(p: str, base: Path) -> Path:
    return Path(p) if Path(p).is_absolute() else base / p


@step("dedup", schema=DEDUP_SCHEMA)
def dedup(**config: Any) -> Any:
    """Drop exact and near-duplicate records (MinHash LSH), keeping the first seen."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        from synth.curate.dedup import Deduper
        from synth.curate.ingest import read_real
        from synth.text.lexical import text_of

        dd = Deduper(exact=config.get("exact", True), near=config.get("near", True),
                     threshold=config.get("threshold", 0.75))  # fmt: skip
        for p in config.get("against", []):
            batch: list[Record] = []
            for rec in read_real(_path(p, ctx.base_dir)):
                batch.append(rec)
                if len(batch) >= 2048:
                    dd.check([text_of(r.data) for r in batch], [r.id for r in batch], "against")
                    batch = []
            if batch:
                dd.check([text_of(r.data) for r in batch], [r.id for r in batch], "against")
        async for rec in records:
            dup = dd.check([text_of(rec.data)], [rec.id], "run")[0]
            if dup is None:
                yield rec
            else:
                ctx.stats[f"dedup_{dup.kind}"] += 1

    return run


@step("decontaminate", schema=DECONTAM_SCHEMA)
def decontaminate(**config: Any) -> Any:
    """Remove evaluation-set overlap (13-gram, 8-gram for short records; GPT-3 cut or drop)."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        from synth.curate.decontam import DecontamConfig, Decontaminator, EvalIndex

        cfg = DecontamConfig(mode=config.get("mode", "gpt3"), n=config.get("n", 13),
                             short_n=config.get("short_n", 8),
                             short_tokens=config.get("short_tokens", 100))  # fmt: skip
        paths = [_path(p, ctx.base_dir) for p in config["eval_sets"]]
        dc = Decontaminator(EvalIndex.from_paths(paths, cfg))
        async for rec in records:
            outcome = dc.process([rec])[0]
            for s in outcome.sets:
                ctx.stats[f"decontam_hits_{s}"] += 1
            if outcome.action != "clean":
                ctx.stats[f"decontam_{outcome.action}"] += 1
            for r in outcome.records:
                yield r

    return run
