"""The mixer: real data plus verified synthetic data, in a way that cannot slide into
the 'replace' regime that collapses models (synthetic data only ever adds to real data).

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

import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from synth.context import derive_seed
from synth.curate.decontam import DecontamConfig, Decontaminator, EvalIndex
from synth.curate.dedup import Deduper
from synth.curate.ingest import Clean, read_real
from synth.curate.inputs import Batch, open_batch, sha256_path
from synth.curate.mixconfig import (
    MIX_SCHEMA,
    MixConfig,
    is_anchor,
    lineage_depth,
    provenance_reason,
)
from synth.curate.mixwrite import Spool, finish, select_and_write
from synth.errors import ConfigError
from synth.records import Record, content_hash
from synth.text.lexical import text_of

BATCH = 2048
ANCHOR_SAMPLE = 10_000
GATE_MIN_ANCHOR = 200  # below this the real-vs-real band is too noisy to refuse a batch on


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
    from synth.curate.monitor import MonitorConfig, monitor

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
        spool = Spool(tmp / "candidates.jsonl")
        anchor_texts = _carve_anchor(real, anchor, config, dedup, tmp, stats, clean)

        def admit(records: Iterable[Record], source: str, gen_of: Any) -> None:
            for batch in _batched(records):
                verdicts = dedup.check(
                    [text_of(r.data) for r in batch], [r.id for r in batch], source
                )
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
        if config.monitor and len(anchor_texts) >= GATE_MIN_ANCHOR:
            from synth.curate.monitor import Anchor

            anchor_obj = Anchor.of(anchor_texts, config.seed)
        for batch in sorted(batches, key=_first_generation):
            info = _admit_batch(batch, config, stats, drops, anchor_obj, monitor, MonitorConfig,
                                monitor_root, admit)  # fmt: skip
            inputs_syn.append(info)
        report = select_and_write(spool, out, tmp, config, stats, drops, dedup)
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
                f"(< {GATE_MIN_ANCHOR}); raise anchor_fraction or pass --anchor"
            )
        report["cleaning"] = {
            k: v for k, v in sorted(stats.items()) if k.startswith(("pii_", "unicode"))
        }
        finish(out, tmp, report)
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
    from synth.files import state_dir

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
    from synth.schema import check

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


__all__ = ["MIX_SCHEMA", "MixConfig", "is_anchor", "lineage_depth", "mix", "mix_from_config"]
