"""Writing a mix: candidates spooled to disk, the plan applied, shards shuffled per
seed, manifest and report, all renamed into place from a temporary folder (report last)."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synth.context import derive_seed
from synth.curate.dedup import Deduper
from synth.curate.inputs import sha256_path
from synth.curate.mixconfig import MixConfig
from synth.curate.shards import Item, plan
from synth.records import Record
from synth.text.lexical import text_of, token_count


@dataclass
class Spool:
    """Candidate records on disk with their (source, tokens, generation) in memory."""

    path: Path
    items: list[tuple[str, str, int, int]] = field(default_factory=list)  # id, source, tokens, gen

    def __post_init__(self) -> None:
        self.fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in read)

    def add(self, rec: Record, source: str, generation: int) -> None:
        self.fh.write(rec.to_json() + "\n")
        self.items.append((rec.id, source, token_count(text_of(rec.data)), generation))

    def read(self) -> Iterator[Record]:
        self.fh.close()
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                yield Record.from_json(line)


def select_and_write(
    spool: Spool,
    out: Path,
    tmp: Path,
    config: MixConfig,
    stats: Counter[str],
    drops: dict[str, Counter[str]],
    dedup: Deduper,
) -> dict[str, Any]:
    real_idx = [i for i, it in enumerate(spool.items) if it[1] == "real"]
    syn_idx = [i for i, it in enumerate(spool.items) if it[1] == "synthetic"]
    the_plan = plan(
        [Item(spool.items[i][0], spool.items[i][2]) for i in real_idx],
        [Item(spool.items[i][0], spool.items[i][2]) for i in syn_idx],
        strategy=config.strategy,
        real_floor=config.real_floor,
        max_synthetic_ratio=config.max_synthetic_ratio,
        real_fraction=config.real_fraction,
        target_tokens=config.target_tokens,
        shard_records=config.shard_records,
        seed=config.seed,
    )
    digest = config.digest()[:16]
    where: dict[int, int] = {}
    for k, shard in enumerate(the_plan.shards):
        where.update({real_idx[i]: k for i in shard.real})
        where.update({syn_idx[i]: k for i in shard.synthetic})
    width = max(5, len(str(len(the_plan.shards))))
    names = [f"shard-{k:0{width}d}.jsonl" for k in range(len(the_plan.shards))]
    handles = [open(tmp / (n + ".unsorted"), "w", encoding="utf-8") for n in names]  # noqa: SIM115
    try:
        for pos, rec in enumerate(spool.read()):
            if pos not in where:
                continue
            k = where[pos]
            _, source, _, gen = spool.items[pos]
            meta = {**rec.meta, "source": source, "generation": gen,
                    "recipe": rec.meta.get("recipe") if source == "synthetic" else None,
                    "shard": k, "mix": {"seed": config.seed, "config": digest}}  # fmt: skip
            handles[k].write(Record(rec.id, rec.data, meta).to_json() + "\n")
    finally:
        for h in handles:
            h.close()
    manifest = []
    by_gen: dict[str, Counter[str]] = defaultdict(Counter)
    shards_report = []
    for k, name in enumerate(names):
        lines = (tmp / (name + ".unsorted")).read_text(encoding="utf-8").splitlines()
        recs = sorted(
            (Record.from_json(x) for x in lines),
            key=lambda r: (derive_seed(config.seed, r.id), r.id),
        )
        with open(tmp / name, "w", encoding="utf-8") as fh:
            for r in recs:
                fh.write(r.to_json() + "\n")
                src = r.meta["source"]
                manifest.append({"id": r.id, "source": src, "generation": r.meta["generation"],
                                 "weight": 1.0, "shard": k})  # fmt: skip
                by_gen[f"{src}:{r.meta['generation']}"]["records"] += 1
                by_gen[f"{src}:{r.meta['generation']}"]["tokens"] += token_count(text_of(r.data))
        (tmp / (name + ".unsorted")).unlink()
        s = the_plan.shards[k]
        shards_report.append({"file": name, "records": len(recs), "real_tokens": s.real_tokens,
                              "synthetic_tokens": s.synthetic_tokens,
                              "real_fraction": round(s.real_fraction, 6)})  # fmt: skip
    with open(tmp / "manifest.jsonl", "w", encoding="utf-8") as fh:
        for m in manifest:
            fh.write(json.dumps(m, sort_keys=True) + "\n")
    real_tok = sum(s.real_tokens for s in the_plan.shards)
    syn_tok = sum(s.synthetic_tokens for s in the_plan.shards)
    syn_sel = sum(len(s.synthetic) for s in the_plan.shards)
    return {
        "version": 1,
        "seed": config.seed,
        "config": asdict(config),
        "config_hash": config.digest(),
        "counts": {
            "real": {
                "read": stats["real_read"],
                "anchor": stats["anchor"],
                "candidates": len(real_idx),
                "selected": the_plan.real_selected,
                "tokens": real_tok,
            },  # fmt: skip
            "synthetic": {
                "read": stats["synthetic_read"],
                "candidates": len(syn_idx),
                "selected": syn_sel,
                "tokens": syn_tok,
                "over_budget": the_plan.synthetic_over_budget,
                "dropped_for_floor": the_plan.dropped_for_floor,
            },  # fmt: skip
            "by_source_generation": {k: dict(v) for k, v in sorted(by_gen.items())},
        },
        "removed": {src: dict(sorted(c.items())) for src, c in sorted(drops.items())},
        "dedup": {
            "bands": dedup.params.bands,
            "rows": dedup.params.rows,
            "ngram": dedup.params.ngram,
            "threshold": config.near_threshold,
        },  # fmt: skip
        "real_fraction": real_tok / (real_tok + syn_tok) if real_tok + syn_tok else 1.0,
        "synthetic_budget_tokens": the_plan.synthetic_budget,
        "shards": shards_report,
        "warnings": [],
    }


def finish(out: Path, tmp: Path, report: dict[str, Any]) -> None:
    """Rename every output into place, drop stale shards of an earlier mix, report last."""
    produced = sorted(p.name for p in tmp.iterdir() if p.name != "candidates.jsonl")
    report["outputs"] = {name: sha256_path(tmp / name) for name in produced}
    for old in out.glob("shard-*.jsonl"):
        if old.name not in produced:
            old.unlink()
    for name in produced:
        os.replace(tmp / name, out / name)
    final = tmp / "mix_report.json"
    final.write_text(
        json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )
    os.replace(final, out / "mix_report.json")
