"""The collapse monitor: is this batch drifting away from real data? ok / warn / fail.

Each metric of `synth.curate.diversity` is computed on a fixed-size random sample of the batch
and compared with a *real-vs-real baseline*: the same metric on samples of the same size
drawn from the held-out real anchor set (20 draws give a mean and a 1-99% band), because
every one of these metrics depends on sample size. The anchor is split once: one half is
the reference that rare-coverage, novelty and lengths are measured against, the other
half supplies the baseline samples, so real data scores ~1.0 on every ratio.

Rules (starting points from the model-collapse literature; each is overridable):

    metric               bad when  warn                         fail
    distinct_2/4         low       ratio < 0.85                 ratio < 0.6
    compression_ratio    low       value < band low - 0.02      ratio < 0.8
    self_bleu            high      value > band high + 0.05     value > band high + 0.15
    rare_coverage        low       ratio < 0.8                  ratio < 0.5
    novel_rate           either    outside band x [0.7, 1.5]    outside band x [0.4, 3]
    vendi                low       ratio < 0.8                  ratio < 0.5
    length_w1            high      > 0.25 (anchor std units)    > 0.5
    exact_dup_rate       high      > baseline + 1%              > baseline + 5%
    near_dup_rate        high      > baseline + 5%              > baseline + 20%
    trend (low-is-bad)   drop      > 20% below the series'      > 40% below it
                                   first accepted generation

Generated text is usually less diverse than human text even when nothing collapses, so
the trend rule, kept in the state dir across generations or nightly runs, is what
catches drift. The verifier tail audit compares a run's kept records with kept+rejected:
a chain that keeps only typical records erodes the tail even when data accumulate (the
rare cases vanish first, as Shumailov et al. found), and that is invisible to quality checks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synth.curate.diversity import Corpus, Reference, measure, tail_audit
from synth.curate.monitor_state import History
from synth.errors import ConfigError
from synth.files import state_dir, write_json_atomic, write_text_atomic
from synth.text.lexical import WordIds

STATUS_ORDER = {"ok": 0, "warn": 1, "fail": 2}
LOW_IS_BAD = ("distinct_2", "distinct_4", "compression_ratio", "rare_coverage", "vendi")
METRIC_VERSION = 1
MIN_ANCHOR = 20
MIN_BATCH = 10

MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["anchor"],
    "properties": {
        "anchor": {"type": "string", "description": "held-out real records (any ingest format)"},
        "sample_docs": {"type": "integer", "minimum": 10},
        "self_bleu_sample": {"type": "integer", "minimum": 2},
        "baseline_draws": {"type": "integer", "minimum": 2},
        "series": {"type": "string"},
        "generation": {"type": "integer", "minimum": 0},
        "audit": {"type": "boolean"},
        "history": {"type": "boolean"},
        "seed": {"type": "integer"},
        "fields": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": "data fields to measure (default: the fields the model wrote)",
        },
    },
}


@dataclass(frozen=True, kw_only=True)
class MonitorConfig:
    sample_docs: int = 10_000
    self_bleu_sample: int = 1000
    baseline_draws: int = 20
    seed: int = 0


def worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=STATUS_ORDER.__getitem__, default="ok")


# -- judging one metric --------------------------------------------------------------------
def judge(name: str, value: float, base: Mapping[str, float]) -> tuple[str, str]:
    """(status, reason) for one metric against its real-vs-real baseline."""
    mean, lo, hi = base["mean"], base["lo"], base["hi"]
    ratio = value / mean if mean > 0 else 1.0
    label = name.replace("_", "-")
    if name in ("distinct_2", "distinct_4", "rare_coverage", "vendi"):
        warn_at, fail_at = (0.85, 0.6) if name.startswith("distinct") else (0.8, 0.5)
        status = "fail" if ratio < fail_at else "warn" if ratio < warn_at else "ok"
        return (
            status,
            f"{label} is {ratio:.2f}x the real baseline (warn < {warn_at}, fail < {fail_at})",
        )
    if name == "compression_ratio":
        status = "fail" if ratio < 0.8 else "warn" if value < lo - 0.02 else "ok"
        return status, (
            f"compression ratio {value:.3f} vs real band [{lo:.3f}, {hi:.3f}] "
            "(low = repetitive/templated text)"
        )
    if name == "self_bleu":
        status = "fail" if value > hi + 0.15 else "warn" if value > hi + 0.05 else "ok"
        return (
            status,
            f"self-BLEU {value:.3f} vs real band high {hi:.3f} (documents resemble each other)",
        )
    if name == "novel_rate":
        if value < lo * 0.4 or value > hi * 3:
            status = "fail"
        elif value < lo * 0.7 or value > hi * 1.5:
            status = "warn"
        else:
            status = "ok"
        return status, (
            f"novel-bigram rate {value:.3f} vs real band [{lo:.3f}, {hi:.3f}] "
            "(too low: copying; too high: garbage)"
        )
    if name == "length_w1":
        status = "fail" if value > 0.5 else "warn" if value > 0.25 else "ok"
        return status, f"length distribution is {value:.2f} anchor std away (W1; warn > 0.25)"
    if name in ("exact_dup_rate", "near_dup_rate"):
        warn_at, fail_at = (0.01, 0.05) if name == "exact_dup_rate" else (0.05, 0.20)
        excess = value - mean
        status = "fail" if excess > fail_at else "warn" if excess > warn_at else "ok"
        return (
            status,
            f"{label} {value:.1%} vs real {mean:.1%} (warn +{warn_at:.0%}, fail +{fail_at:.0%})",
        )
    return "ok", f"{label} {value:.4g}"


def trend_check(first: Mapping[str, float], now: Mapping[str, float]) -> list[tuple[str, str]]:
    """Drops of low-is-bad ratios relative to the series' first accepted generation."""
    out = []
    for name in LOW_IS_BAD:
        if name in first and name in now and first[name] > 0:
            drop = 1.0 - now[name] / first[name]
            if drop > 0.2:
                status = "fail" if drop > 0.4 else "warn"
                out.append(
                    (status, f"trend: {name} fell {drop:.0%} since the first accepted generation")
                )
    return out


def trend_status(series: Sequence[float]) -> str:
    """The trend rule on one low-is-bad series (first value = first accepted generation)."""
    if len(series) < 2:
        return "ok"
    return worst([s for s, _ in trend_check({"distinct_2": series[0]}, {"distinct_2": series[-1]})])


# -- the baseline --------------------------------------------------------------------------
def baseline(
    pool: Corpus, ref: Reference, n: int, config: MonitorConfig
) -> dict[str, dict[str, float]]:
    """Mean and 1-99% band of every metric over `baseline_draws` real samples of size n."""
    rng = np.random.default_rng(config.seed + 1)
    draws = [
        measure(pool.sample(n, rng), ref, self_bleu_sample=config.self_bleu_sample, seed=i)
        for i in range(config.baseline_draws)
    ]
    out = {}
    for name in draws[0]:
        vals = np.array([d[name] for d in draws])
        lo, hi = np.percentile(vals, [1, 99])
        out[name] = {"mean": float(vals.mean()), "lo": float(lo), "hi": float(hi)}
    return out


@dataclass
class Anchor:
    """The anchor split into reference and baseline pool, with a cache key."""

    ref: Reference
    pool: Corpus
    key: str
    size: int

    @classmethod
    def of(cls, texts: Sequence[str], seed: int = 0, words: WordIds | None = None) -> Anchor:
        if len(texts) < MIN_ANCHOR:
            raise ConfigError(
                "anchor set too small for a baseline",
                path="anchor",
                expected=f"at least {MIN_ANCHOR} held-out real records (1000+ is better)",
                found=len(texts),
                fix="point --anchor at more real data (the mixer writes anchor.jsonl)",
            )
        perm = np.random.default_rng(seed).permutation(len(texts))
        half = len(texts) // 2
        words = words or WordIds()
        ref = Corpus.from_texts([texts[i] for i in perm[:half]], words)
        pool = Corpus.from_texts([texts[i] for i in perm[half:]], words)
        digest = hashlib.sha256()
        for t in texts:
            digest.update(t.encode("utf-8", "replace") + b"\x1e")
        return cls(Reference.of(ref), pool, digest.hexdigest()[:24], len(texts))


def _cached_baseline(anchor: Anchor, n: int, config: MonitorConfig, cache: Path | None) -> Any:
    if cache is None:
        return baseline(anchor.pool, anchor.ref, n, config)
    key = (
        f"{anchor.key}-n{n}-{hashlib.sha256(json.dumps(asdict(config)).encode()).hexdigest()[:12]}"
    )
    path = cache / "monitor_baselines" / f"v{METRIC_VERSION}-{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    base = baseline(anchor.pool, anchor.ref, n, config)
    write_text_atomic(path, json.dumps(base))
    return base


# -- the monitor ---------------------------------------------------------------------------
def monitor(
    texts: Sequence[str],
    anchor: Anchor | Sequence[str],
    *,
    config: MonitorConfig | None = None,
    rejected: Sequence[str] | None = None,
    history: History | None = None,
    series: str | None = None,
    generation: int | None = None,
    batch_id: str = "",
    cache: Path | None = None,
) -> dict[str, Any]:
    """The monitor report for one batch (see module docstring). With `history` and a
    `series`, the trend rule runs and this batch is appended to the history; with
    `rejected`, the verifier tail audit runs on kept=`texts` vs kept+rejected."""
    config = config or MonitorConfig()
    started = time.perf_counter()
    if not isinstance(anchor, Anchor):
        anchor = Anchor.of(anchor, config.seed)
    if len(texts) < MIN_BATCH:
        raise ConfigError(
            "batch too small to monitor",
            expected=f"at least {MIN_BATCH} records",
            found=len(texts),
        )
    n = min(config.sample_docs, len(texts), max(2, len(anchor.pool) * 3 // 4))
    rng = np.random.default_rng(config.seed)
    pick = np.sort(rng.choice(len(texts), size=n, replace=False)) if n < len(texts) else None
    sample = [texts[i] for i in pick] if pick is not None else list(texts)
    values = measure(Corpus.from_texts(sample), anchor.ref,
                     self_bleu_sample=config.self_bleu_sample, seed=config.seed)  # fmt: skip
    base = _cached_baseline(anchor, n, config, cache)
    metrics: dict[str, Any] = {}
    verdicts: list[tuple[str, str]] = []
    for name, value in values.items():
        b = base[name]
        status, reason = judge(name, value, b)
        ratio = value / b["mean"] if b["mean"] > 0 else None
        metrics[name] = {"value": value, "ratio": ratio, "band": [b["lo"], b["hi"]],
                         "baseline": b["mean"], "status": status}  # fmt: skip
        if status != "ok":
            verdicts.append((status, reason))
    report: dict[str, Any] = {
        "batch_id": batch_id,
        "series": series,
        "generation": generation,
        "docs": len(texts),
        "sample_docs": n,
        "anchor_docs": anchor.size,
        "metrics": metrics,
    }
    if history is not None and series:
        report["generation"] = generation = history.next_generation(series, generation)
        ratios = {k: m["ratio"] for k, m in metrics.items() if m["ratio"] is not None}
        first = history.first_accepted(series)
        if first is not None:
            verdicts += trend_check(first["ratios"], ratios)
            report["trend"] = {"since_generation": first["generation"], "first": first["ratios"]}
    if rejected is not None:
        audit = tail_audit(texts, rejected, ref=anchor.ref, seed=config.seed)
        report["tail_audit"] = audit
        if audit["status"] != "ok":
            verdicts.append((audit["status"], audit["reason"]))
    report["status"] = worst([s for s, _ in verdicts])
    report["reasons"] = [
        f"{s}: {r}" for s, r in sorted(verdicts, key=lambda v: -STATUS_ORDER[v[0]])
    ]
    report["config"] = asdict(config)
    report["elapsed_s"] = round(time.perf_counter() - started, 3)
    if history is not None and series:
        history.append(series, generation, report)
    return report


# -- files and recipes -----------------------------------------------------------------------
def monitor_path(
    target: str | Path,
    anchor_path: str | Path,
    *,
    config: MonitorConfig | None = None,
    series: str | None = None,
    generation: int | None = None,
    audit: bool = True,
    history: bool = True,
    root: Path | None = None,
    fields: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Monitor a run directory or JSONL file against an anchor file or folder. History
    and cached baselines go to `root` (default: the state dir).

    What is measured is the text of `fields`, by default the fields the run's LLM steps
    wrote (`meta["llm_fields"]`), so a collapsing model is seen even when Faker-written
    fields beside it stay diverse; with none, each record's text (`text_of`). Anchor
    records are measured on the same fields when they have them, else on their text."""
    from synth.curate.ingest import read_real
    from synth.curate.inputs import open_batch, sha256_path
    from synth.text.fields import check_present, model_fields, text_for
    from synth.text.lexical import text_of

    batch = open_batch(target)
    records = list(batch.records())
    if fields:
        check_present(fields, (r.data for r in records), where=str(target), path="fields")
    chosen = list(fields or model_fields(r.meta for r in records))
    texts = [text_for(r.data, chosen) for r in records]
    rejected = [text_for(r.data, chosen) for r in batch.rejected()] if audit else None
    anchor_texts = [
        text_for(r.data, chosen) if _has_any(r.data, chosen) else text_of(r.data)
        for r in read_real(anchor_path)
    ]
    root = root or state_dir()
    series = series or batch.recipe_name() or batch.name
    report = monitor(
        texts,
        anchor_texts,
        config=config,
        rejected=rejected or None,
        history=History(root) if history else None,
        series=series,
        generation=generation,
        batch_id=sha256_path(batch.data_file)[:16],
        cache=root,
    )
    report["target"] = str(target)
    report["anchor"] = str(anchor_path)
    report["fields"] = chosen or "the record's text (no field written by a model)"
    return report


def _has_any(data: Any, fields: Sequence[str]) -> bool:
    from synth.text.fields import lookup

    return isinstance(data, Mapping) and any(lookup(data, f) is not None for f in fields)


def monitor_from_config(
    cfg: Mapping[str, Any],
    run_dir: str | Path,
    *,
    base_dir: str | Path = ".",
    seed: int | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """A recipe's `monitor:` section, run after `synth run` wrote `run_dir`: monitors the
    run's data.jsonl (and audits rejects.jsonl) against `cfg["anchor"]` (relative to
    `base_dir`), writes `run_dir/monitor_report.json`, returns the report. Keys: see
    MONITOR_SCHEMA. Raises ConfigError on bad config; a `fail` status is a result, not an
    exception (the caller decides whether it stops the pipeline)."""
    from synth.schema import check

    check(dict(cfg), MONITOR_SCHEMA, file=None, what="monitor section")
    anchor = Path(cfg["anchor"])
    if not anchor.is_absolute():
        anchor = Path(base_dir) / anchor
    config = MonitorConfig(
        sample_docs=int(cfg.get("sample_docs", 10_000)),
        self_bleu_sample=int(cfg.get("self_bleu_sample", 1000)),
        baseline_draws=int(cfg.get("baseline_draws", 20)),
        seed=int(cfg.get("seed", seed if seed is not None else 0)),
    )
    report = monitor_path(
        run_dir,
        anchor,
        config=config,
        series=cfg.get("series"),
        generation=cfg.get("generation"),
        audit=bool(cfg.get("audit", True)),
        history=bool(cfg.get("history", True)),
        root=root,
        fields=cfg.get("fields"),
    )
    write_json_atomic(Path(run_dir) / "monitor_report.json", report)
    return report


__all__ = [
    "MONITOR_SCHEMA",
    "Anchor",
    "History",
    "MonitorConfig",
    "judge",
    "monitor",
    "monitor_from_config",
    "monitor_path",
    "state_dir",
    "tail_audit",
    "trend_check",
    "trend_status",
]
