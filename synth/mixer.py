"""The mixer: real data plus verified synthetic data, in a way that cannot slide into
the 'replace' regime that collapses models (research note §5.1).

    real pool ──► anchor carved out (never trained on; the monitor's reference)
              ──► dedup (exact + MinHash) ──► decontaminate ──┐
    synthetic ──► provenance (verified? lineage depth?)        ├─► select ─► shards
     batches  ──► collapse monitor (fail: refused, warn: half) │   (floor in every shard)
              ──► dedup vs anchor/real/synthetic ──► decontam ─┘

Defaults: `accumulate` (every real record is kept and never replaced; synthetic tokens
<= 1.0 x real tokens), real floor 0.5 of tokens in every shard, only verified synthetic
records of lineage depth <= 1, synthetic copies and near copies of real records dropped
as `dup_of_real`. The anchor is the records whose id hashes below `anchor_fraction`: a
record's anchor status never changes as the pool grows, which is what keeps both anchor
isolation and the never-replace invariant across successive manifests.

Deterministic for a seed; the real side does not depend on the seed at all. Memory holds
per-record (id, tokens) and the dedup index, not texts: candidates are spooled to disk.
Everything is written to a temporary folder and renamed into place, report last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .batches import Batch, open_batch, sha256_path
from .context import derive_seed
from .decontam import DecontamConfig, Decontaminator, EvalIndex
from .dedup import Deduper
from .errors import ConfigError, SynthError
from .ingest import Clean, read_real
from .lexical import text_of, token_count
from .records import Record, content_hash
from .sharding import Item, plan

BATCH = 2048
ANCHOR_SAMPLE = 10_000

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
    """Mixer settings (research note §5.1 table); validated on construction."""

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
    h = int.from_bytes(hashlib.blake2b(b"anchor\x1f" + record_id.encode(), digest_size=8).digest(), "big")
    return h < fraction * 2**64


@dataclass
class _Spool:
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


def _batched(it: Iterable[Record], size: int = BATCH) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for r in it:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def mix(
    real: Sequence[str | Path],
    synthetic: Sequence[str | Path],
    *,
    out: str | Path,
    config: MixConfig | None = None,
    eval_sets: Sequence[str | Path] = (),
    anchor: str | Path | None = None,
    clean: Clean | None = None,
    monitor_root: Path | None = None,
) -> dict[str, Any]:
    """Mix and write `out/` (shards, manifest.jsonl, anchor.jsonl, mix_report.json).
    Returns the report. See the module docstring for what happens to each record."""
    from .monitor import MIN_ANCHOR, MonitorConfig, monitor

    config = config or MixConfig()
    if not real:
        raise ConfigError("no real data given", path="real", expected="at least one --real path",
                          fix="the mixer only ever adds synthetic data to real data")  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".mix-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        batches = [open_batch(p) for p in synthetic]
        index = EvalIndex.from_paths(eval_sets, config.decontam) if eval_sets else None
        decon = Decontaminator(index) if index else None
        dedup = Deduper(exact=config.dedup_exact, near=config.dedup_near,
                        threshold=config.near_threshold)  # fmt: skip
        stats: Counter[str] = Counter()
        drops: dict[str, Counter[str]] = defaultdict(Counter)
        spool = _Spool(tmp / "candidates.jsonl")
        anchor_texts = _carve_anchor(real, anchor, config, dedup, tmp, stats, clean)

        def admit(records: Iterable[Record], source: str, gen_of: Any) -> None:
            for batch in _batched(records):
                verdicts = dedup.check([text_of(r.data) for r in batch], [r.id for r in batch], source)
                fresh = []
                for rec, dup in zip(batch, verdicts, strict=True):
                    if dup is None:
                        fresh.append(rec)
                        continue
                    what = "duplicate" if dup.tag == source else f"dup_of_{dup.tag}"
                    drops[source][f"{what}_{dup.kind}"] += 1
                outcomes = decon.process(fresh) if decon else None
                for k, rec in enumerate(fresh):
                    kept = outcomes[k].records if outcomes else [rec]
                    if outcomes and outcomes[k].action != "clean":
                        drops[source][f"decontam_{outcomes[k].action}"] += 1
                    for r in kept:
                        spool.add(r, source, gen_of(r))

        reals = (r for p in real for r in read_real(p, clean=clean, stats=stats)
                 if anchor is not None or not is_anchor(r.id, config.anchor_fraction))  # fmt: skip
        admit(reals, "real", lambda r: 0)
        inputs_syn = []
        anchor_obj = None
        if config.monitor and len(anchor_texts) >= MIN_ANCHOR:
            from .monitor import Anchor

            anchor_obj = Anchor.of(anchor_texts, config.seed)
        for batch in sorted(batches, key=_first_generation):
            info = _admit_batch(batch, config, stats, drops, anchor_obj, monitor, MonitorConfig,
                                monitor_root, admit)  # fmt: skip
            inputs_syn.append(info)
        report = _select_and_write(spool, out, tmp, config, stats, drops, dedup)
        report["inputs"] = {
            "real": [{"path": str(p), "sha256": sha256_path(p)} for p in real],
            "anchor": {"path": str(anchor), "sha256": sha256_path(anchor)} if anchor else None,
            "synthetic": inputs_syn,
            "eval_sets": [{"path": str(p), "sha256": sha256_path(p)} for p in eval_sets],
        }
        report["decontam"] = {
            "hits": dict(sorted(decon.hits.items())) if decon else {},
            "actions": dict(sorted(decon.actions.items())) if decon else {},
            "config": asdict(config.decontam),
        }
        if not anchor_obj and config.monitor:
            report["warnings"].append(
                f"collapse monitor skipped: the anchor has {len(anchor_texts)} records "
                f"(< {MIN_ANCHOR}); raise anchor_fraction or pass --anchor"
            )
        report["cleaning"] = {k: v for k, v in sorted(stats.items()) if k.startswith(("pii_", "unicode"))}
        _finish(out, tmp, report)
        return report
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _first_generation(batch: Batch) -> int:
    for rec in batch.records():
        return lineage_depth(rec) if "generation" not in rec.meta else int(rec.meta["generation"])
    return 0


def _carve_anchor(
    real: Sequence[str | Path],
    anchor: str | Path | None,
    config: MixConfig,
    dedup: Deduper,
    tmp: Path,
    stats: Counter[str],
    clean: Clean | None,
) -> list[str]:
    """Index the anchor first (so anything near it is dropped) and write anchor.jsonl.
    Returns up to ANCHOR_SAMPLE anchor texts for the monitor."""
    if anchor is not None:
        records: Iterable[Record] = read_real(anchor, clean=clean)
    else:
        records = (r for p in real for r in read_real(p, clean=clean)
                   if is_anchor(r.id, config.anchor_fraction))  # fmt: skip
    texts: list[str] = []
    with open(tmp / "anchor.jsonl", "w", encoding="utf-8") as fh:
        for batch in _batched(records):
            batch_texts = [text_of(r.data) for r in batch]
            dups = dedup.check(batch_texts, [r.id for r in batch], "anchor")
            for rec, text, dup in zip(batch, batch_texts, dups, strict=True):
                if dup is not None:
                    continue
                stats["anchor"] += 1
                fh.write(rec.to_json() + "\n")
                if len(texts) < ANCHOR_SAMPLE:
                    texts.append(text)
    return texts


def _admit_batch(
    batch: Batch,
    config: MixConfig,
    stats: Counter[str],
    drops: dict[str, Counter[str]],
    anchor_obj: Any,
    monitor: Any,
    monitor_config: Any,
    monitor_root: Path | None,
    admit: Any,
) -> dict[str, Any]:
    """Provenance, then the collapse monitor, then dedup + decontam for one batch."""
    from .monitor import state_dir

    rejected: Counter[str] = Counter()
    accepted_texts: list[str] = []
    read = 0
    for rec in batch.records():
        read += 1
        reason = provenance_reason(rec, from_run=batch.is_run, config=config)
        if reason:
            rejected[reason] += 1
        else:
            accepted_texts.append(text_of(rec.data))
    stats["synthetic_read"] += read
    for k, v in rejected.items():
        drops["synthetic"][k] += v
    info: dict[str, Any] = {"path": str(batch.path), "sha256": sha256_path(batch.data_file),
                            "records": read, "rejected": dict(rejected)}  # fmt: skip
    status, keep_share = "ok", 1.0
    if anchor_obj is not None and len(accepted_texts) >= 10:
        cfg = monitor_config(sample_docs=config.monitor_sample_docs, seed=config.seed)
        root = monitor_root or state_dir()
        key = content_hash([info["sha256"], anchor_obj.key, asdict(cfg), config.digest()])
        gate = root / "monitor_gates" / f"{key[:32]}.json"
        if gate.is_file():  # the same batch, anchor and settings were judged before
            info["monitor"] = json.loads(gate.read_text(encoding="utf-8"))
        else:
            rep = monitor(accepted_texts, anchor_obj, config=cfg, cache=root)
            info["monitor"] = {"status": rep["status"], "reasons": rep["reasons"]}
            gate.parent.mkdir(parents=True, exist_ok=True)
            tmp_gate = gate.with_name(gate.name + f".{os.getpid()}.tmp")
            tmp_gate.write_text(json.dumps(info["monitor"]), encoding="utf-8")
            tmp_gate.replace(gate)
        status = info["monitor"]["status"]
        if status == "fail":
            drops["synthetic"]["monitor_fail"] += len(accepted_texts)
            info["used"] = False
            return info
        if status == "warn":
            keep_share = 0.5
    del accepted_texts
    recipe = batch.recipe_name()

    def usable() -> Iterator[Record]:
        for rec in batch.records():
            if provenance_reason(rec, from_run=batch.is_run, config=config):
                continue
            if keep_share < 1.0 and derive_seed(config.seed, "warn-half", rec.id) % 2:
                drops["synthetic"]["monitor_warn_halved"] += 1
                continue
            meta = dict(rec.meta)
            meta.setdefault("recipe", recipe)
            meta["generation"] = int(meta.get("generation", lineage_depth(rec)))
            yield Record(rec.id, rec.data, meta)

    admit(usable(), "synthetic", lambda r: int(r.meta.get("generation", 1)))
    info["used"] = True
    info["weight"] = keep_share
    return info


def _select_and_write(
    spool: _Spool,
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
            k = where.get(pos)
            if k is None:
                continue
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
        recs = sorted((Record.from_json(x) for x in lines), key=lambda r: (derive_seed(config.seed, r.id), r.id))
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
            "real": {"read": stats["real_read"], "anchor": stats["anchor"], "candidates": len(real_idx),
                     "selected": the_plan.real_selected, "tokens": real_tok},  # fmt: skip
            "synthetic": {"read": stats["synthetic_read"], "candidates": len(syn_idx),
                          "selected": syn_sel, "tokens": syn_tok,
                          "over_budget": the_plan.synthetic_over_budget,
                          "dropped_for_floor": the_plan.dropped_for_floor},  # fmt: skip
            "by_source_generation": {k: dict(v) for k, v in sorted(by_gen.items())},
        },
        "removed": {src: dict(sorted(c.items())) for src, c in sorted(drops.items())},
        "dedup": {"bands": dedup.params.bands, "rows": dedup.params.rows,
                  "ngram": dedup.params.ngram, "threshold": config.near_threshold},  # fmt: skip
        "real_fraction": real_tok / (real_tok + syn_tok) if real_tok + syn_tok else 1.0,
        "synthetic_budget_tokens": the_plan.synthetic_budget,
        "shards": shards_report,
        "warnings": [],
    }


def _finish(out: Path, tmp: Path, report: dict[str, Any]) -> None:
    """Rename every output into place, drop stale shards of an earlier mix, report last."""
    produced = sorted(p.name for p in tmp.iterdir() if p.name != "candidates.jsonl")
    report["outputs"] = {name: sha256_path(tmp / name) for name in produced}
    for old in out.glob("shard-*.jsonl"):
        if old.name not in produced:
            old.unlink()
    for name in produced:
        os.replace(tmp / name, out / name)
    final = tmp / "mix_report.json"
    final.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(final, out / "mix_report.json")


def mix_from_config(
    cfg: Mapping[str, Any],
    run_dir: str | Path,
    *,
    base_dir: str | Path = ".",
    seed: int | None = None,
) -> dict[str, Any]:
    """A recipe's `mix:` section, run after `synth run` wrote `run_dir`: mixes the run's
    data.jsonl (plus `cfg["synthetic"]`) with `cfg["real"]`, writes to `cfg["out"]`
    (default `run_dir/mixed`), returns the mix report. Paths are relative to `base_dir`;
    `seed` (the run's) is used when the section has none. Keys: see MIX_SCHEMA."""
    from .schema import check

    check(dict(cfg), MIX_SCHEMA, file=None, what="mix section")
    base = Path(base_dir)

    def p(x: str) -> Path:
        return Path(x) if Path(x).is_absolute() else base / x

    reals = [cfg["real"]] if isinstance(cfg["real"], str) else list(cfg["real"])
    keys = {f for f in MixConfig.__dataclass_fields__ if f not in ("decontam", "seed")}
    settings = {k: v for k, v in cfg.items() if k in keys}
    decontam = replace(DecontamConfig(), mode=cfg.get("decontam_mode", "gpt3"))
    config = MixConfig(**settings, decontam=decontam,
                       seed=int(cfg.get("seed", seed if seed is not None else 0)))  # fmt: skip
    out = p(cfg["out"]) if "out" in cfg else Path(run_dir) / "mixed"
    return mix(
        [p(x) for x in reals],
        [Path(run_dir), *(p(x) for x in cfg.get("synthetic", []))],
        out=out,
        config=config,
        eval_sets=[p(x) for x in cfg.get("eval_sets", [])],
        anchor=p(cfg["anchor"]) if cfg.get("anchor") else None,
    )


__all__ = ["MIX_SCHEMA", "MixConfig", "SynthError", "is_anchor", "mix", "mix_from_config"]
