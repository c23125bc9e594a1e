"""`report.html` for a run: what a person opens to decide whether a dataset is any good.

The report is one self-contained file (inline CSS and SVG, no script, a CSP that forbids
fetching anything), so it opens offline from a laptop or an artifact store. Record text is
untrusted, so it only reaches the page through Jinja2's autoescaping.

The numbers come from the run's `manifest.json` where the engine wrote them, and from one
bounded pass over `data.jsonl` and `rejects.jsonl` (lengths, scores, a reservoir sample,
rejection reasons per verifier). A `report.json` beside the HTML keeps the summary so later
nights can draw trends without re-reading old data.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synth.context import rng_for
from synth.files import jsonl_lines, write_text_atomic
from synth.report import browse, charts
from synth.report.profiles import FieldProfiler, field_profiles, generated_fields
from synth.text.fields import model_fields, text_for

SAMPLE = 12  # kept and rejected records shown with their lineage without script
EXAMPLES = 3  # rejected records shown beside each rejection reason
SCAN_LIMIT = 200_000  # lines read per file for histograms; counts come from the manifest
PROFILE_LIMIT = 10_000  # kept records profiled field by field (the page says how many)
DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class RunSummary:
    """Everything the run template shows; also serialised to `report.json`."""

    name: str
    run_dir: str
    generated_at: str
    status: str
    requested: int | None
    kept: int
    rejected: int
    attempts: int | None
    cost_usd: float
    tokens: dict[str, int]
    llm: dict[str, int]
    duration_s: float | None
    seed: Any
    model: str | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    diversity: dict[str, float] = field(default_factory=dict)
    monitor: dict[str, Any] | None = None
    scanned: dict[str, int] = field(default_factory=dict)
    night: str | None = None
    fields: list[str] = field(default_factory=list)  # what lengths and diversity measure


def write_report(
    run_dir: str | Path, *, out: str | Path | None = None, fields: list[str] | None = None
) -> Path:
    """Write `<run_dir>/report.html` (and `report.json`) and return the HTML path.

    Called at the end of `synth run`, by batches, by the service (for a live snapshot,
    with `out` elsewhere so the run dir is untouched) and by `synth report DIR`. Never
    raises for odd or partial content: a report of a half-finished run is still useful.
    Lengths and diversity measure `fields`, by default the fields the model wrote
    (`synth.text.fields`), else each record's text."""
    run_dir = Path(run_dir)
    summary, extras = summarize(run_dir, fields=fields)
    html = render("run.html", s=summary, **extras)
    target = Path(out) if out is not None else run_dir / "report.html"
    write_text_atomic(target, html)
    if out is None:
        write_text_atomic(
            run_dir / "report.json", json.dumps(asdict(summary), indent=2, default=str)
        )
    return target


def summarize(
    run_dir: Path, *, fields: list[str] | None = None
) -> tuple[RunSummary, dict[str, Any]]:
    manifest = load_json(run_dir / "manifest.json")
    counts = _get(manifest, "counts", default={}) or {}
    chosen = list(fields or _written_fields(run_dir))
    kept_scan = _scan(run_dir / "data.jsonl", seed_label="kept", fields=chosen, profile=True)
    rej_scan = _scan(run_dir / "rejects.jsonl", seed_label="rejected", fields=chosen)
    from_manifest = manifest.get("diversity") or {}
    if (from_manifest.get("text_fields") or []) != chosen:
        from_manifest = {}  # the engine's distinct-2 measured other fields
    llm = _get(manifest, "llm", default={}) or {}
    monitor = load_json(run_dir / "monitor_report.json") or None
    night = run_dir.parent.name if DATE_DIR.match(run_dir.parent.name) else None
    status = str(manifest.get("status") or "unknown")
    if manifest.get("stop_reason"):
        status = f"{status}: {manifest['stop_reason']}"
    summary = RunSummary(
        name=str(_get(manifest, "recipe.name", default=None) or run_dir.name),
        run_dir=str(run_dir),
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        status=status,
        requested=_int(manifest.get("n")),
        kept=int(counts.get("kept", kept_scan.lines)),
        rejected=int(counts.get("rejected", rej_scan.lines)),
        attempts=_int(counts.get("generated")),
        cost_usd=float(llm.get("cost_usd") or 0),
        tokens={
            "input": int(llm.get("input_tokens") or 0),
            "output": int(llm.get("output_tokens") or 0),
        },
        llm={k: int(llm.get(k) or 0) for k in ("calls", "requests", "cache_hits", "rate_limited")},
        duration_s=_float(_get(manifest, "durations.total_s")),
        seed=manifest.get("seed"),
        model=manifest.get("model"),
        reasons=_reasons(counts.get("rejected_by_reason") or {}, rej_scan),
        diversity=_diversity(from_manifest, kept_scan.texts),
        monitor=monitor,
        scanned={"kept": kept_scan.lines, "rejected": rej_scan.lines},
        night=night,
        fields=chosen,
    )
    rows = browse.browser_rows(kept_scan.sample, rej_scan.sample)
    traces = browse.load_traces(run_dir, browse.trace_ids(r[4] for r in rows))
    js, js_hash = browse.script()
    profiler = kept_scan.profiler or FieldProfiler()
    extras = {
        "charts": _run_charts(summary, kept_scan, rej_scan, _trend(run_dir, summary)),
        "fields": field_profiles(profiler, generated_fields(manifest, run_dir), kept_scan.sample),
        "profiled": profiler.profile.records,
        "profile_limited": kept_scan.lines > PROFILE_LIMIT,
        "examples": {f"{v}\t{r}": shown for (v, r), shown in rej_scan.examples.items()},
        "browse_json": browse.data_block({"rows": rows, "traces": traces}),
        "browse_js": js,
        "browse_hash": js_hash,
        "browse_limit": browse.BROWSE,
        "browse_counts": {"kept": len(kept_scan.sample), "rejected": len(rej_scan.sample)},
        "traced": len(traces),
        "samples_kept": [_sample_view(r, chosen) for r in kept_scan.sample[:SAMPLE]],
        "samples_rejected": [_sample_view(r, chosen) for r in rej_scan.sample[:SAMPLE]],
        "field_distinct": (manifest.get("diversity") or {}).get("distinct_ratio") or {},
        "monitor_rows": _monitor_rows(monitor),
        "manifest_json": json.dumps(manifest, indent=2, ensure_ascii=False, default=str),
        "truncated": kept_scan.truncated or rej_scan.truncated,
        "scan_limit": SCAN_LIMIT,
    }
    return summary, extras


def _diversity(from_manifest: Mapping[str, Any], texts: list[str]) -> dict[str, float]:
    """Text diversity of the kept records (a sample of at most 2,000): the engine's
    distinct-2 and duplicate count, plus distinct-4, zlib compression ratio, self-BLEU and
    the exact/near duplicate rates from `synth.curate.diversity` (the monitor's own metrics)."""
    out: dict[str, float] = {}
    if _is_num(from_manifest.get("distinct_2")):
        out["distinct_2"] = float(from_manifest["distinct_2"])
    if len(texts) >= 2:
        import numpy as np

        from synth.curate.diversity import (
            Corpus,
            compression_ratio,
            exact_dup_rate,
            near_dup_rate,
            self_bleu,
        )

        corpus = Corpus.from_texts(texts)
        for n in (2, 4):
            grams, _ = corpus.ngrams(n)
            if grams.size and f"distinct_{n}" not in out:
                out[f"distinct_{n}"] = float(np.unique(grams).size / grams.size)
        out["compression_ratio"] = compression_ratio(corpus.texts)
        bleu = corpus.take(np.arange(min(len(corpus), 500)))  # O(n) but not free
        out["self_bleu"] = self_bleu(bleu.ids, bleu.lengths)
        out["exact_dup_rate"] = exact_dup_rate(corpus.ids, corpus.lengths)
        out["near_dup_rate"] = near_dup_rate(corpus.ids, corpus.lengths)
    return {k: round(float(v), 4) for k, v in sorted(out.items())}


def _monitor_rows(monitor: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name, m in sorted(((monitor or {}).get("metrics") or {}).items()):
        if isinstance(m, Mapping):
            band = m.get("band") or [None, None]
            rows.append(
                {
                    "metric": name,
                    "value": _float(m.get("value")),
                    "ratio": _float(m.get("ratio")),
                    "band": band,
                    "status": str(m.get("status", "")),
                }
            )
    return rows


@dataclass
class _Scan:
    lines: int = 0
    truncated: bool = False
    lengths: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    details: dict[tuple[str, str], str] = field(default_factory=dict)
    examples: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    profiler: FieldProfiler | None = None


def _written_fields(run_dir: Path, limit: int = 1000) -> list[str]:
    """The fields the model wrote, from the lineage of the first records of the run."""
    metas: list[Any] = []
    for name in ("data.jsonl", "rejects.jsonl"):
        for i, obj in enumerate(_jsonl(run_dir / name)):
            if i >= limit:
                break
            metas.append(obj.get("meta") if isinstance(obj.get("meta"), dict) else None)
    return model_fields(metas)


def _scan(
    path: Path, *, seed_label: str, fields: list[str] | None = None, profile: bool = False
) -> _Scan:
    """One pass, bounded memory: reservoir sample (what the record browser embeds),
    lengths, verdict scores, reasons with a few examples, and field profiles if asked."""
    scan = _Scan(profiler=FieldProfiler() if profile else None)
    keep = browse.BROWSE
    rng = rng_for(0, "report", seed_label)
    for obj in _jsonl(path):
        scan.lines += 1
        if scan.lines > SCAN_LIMIT:
            scan.truncated = True
            continue
        data, meta = obj.get("data"), obj.get("meta") or {}
        text = text_for(data, fields)
        scan.lengths.append(len(text))
        if scan.profiler is not None and scan.lines <= PROFILE_LIMIT:
            scan.profiler.add(data)
        if len(scan.texts) < 2000:
            scan.texts.append(text)
        for v in meta.get("verdicts") or []:
            if isinstance(v, dict) and _is_num(v.get("score")):
                scan.scores.setdefault(str(v.get("verifier")), []).append(float(v["score"]))
        failed = [v for v in meta.get("verdicts") or [] if isinstance(v, dict) and not v.get("ok")]
        if failed or meta.get("reject_reason"):
            last = failed[-1] if failed else {}
            key = (
                str(last.get("verifier", "?")),
                str(meta.get("reject_reason") or last.get("reason")),
            )
            scan.failures[key] += 1
            if last.get("detail"):
                scan.details.setdefault(key, str(last["detail"])[:300])
            shown = scan.examples.setdefault(key, [])
            if len(shown) < EXAMPLES:
                shown.append(
                    {
                        "id": str(obj.get("id", "?")),
                        "headline": text[:160] + ("…" if len(text) > 160 else ""),
                        "detail": str(last.get("detail") or "")[:300],
                    }
                )
        # Reservoir sampling (Algorithm R): a uniform sample in one pass, fixed seed.
        if len(scan.sample) < keep:
            scan.sample.append(obj)
        else:
            j = rng.randrange(scan.lines)
            if j < keep:
                scan.sample[j] = obj
    return scan


def _reasons(by_reason_total: Mapping[str, Any], rej: _Scan) -> list[dict[str, Any]]:
    """Rejections per (verifier, reason). Totals come from the manifest's counters (exact
    even past the scan limit); which verifier gave each reason comes from the verdicts."""
    scanned: dict[str, list[tuple[str, int]]] = {}
    for (verifier, reason), c in rej.failures.items():
        scanned.setdefault(reason, []).append((verifier, c))
    totals = {str(k): int(v) for k, v in by_reason_total.items() if _is_num(v)}
    rows = []
    for reason in sorted(set(scanned) | set(totals)):
        parts = scanned.get(reason, [("?", 0)])
        seen = sum(c for _, c in parts) or 1
        for verifier, c in parts:
            count = round(totals[reason] * c / seen) if reason in totals else c
            detail = rej.details.get((verifier, reason), "")
            rows.append({"verifier": verifier, "reason": reason, "count": count, "detail": detail})
    return sorted(rows, key=lambda r: (-r["count"], r["reason"]))


def _run_charts(
    s: RunSummary, kept: _Scan, rej: _Scan, trend: tuple[list[str], dict[str, list[Any]]]
) -> dict[str, str]:
    out: dict[str, str] = {}
    if s.reasons:
        labels = [f"{r['verifier']}: {r['reason']}" for r in s.reasons[:20]]
        out["reasons"] = charts.bars(
            labels, [r["count"] for r in s.reasons[:20]], title="Rejections by verifier and reason"
        )
    if kept.lengths or rej.lengths:
        out["lengths"] = charts.histogram(
            {"kept": kept.lengths, "rejected": rej.lengths},
            title="Record length",
            xlabel="characters of text",
        )
    for verifier in sorted(set(kept.scores) | set(rej.scores)):
        values = set(kept.scores.get(verifier, []) + rej.scores.get(verifier, []))
        if values <= {0.0, 1.0}:
            continue  # a pass/fail verifier: the rejection table already says it all
        out[f"scores: {verifier}"] = charts.histogram(
            {"kept": kept.scores.get(verifier, []), "rejected": rej.scores.get(verifier, [])},
            title=f"Scores given by {verifier}",
            xlabel="score",
            bins=20,
        )
    nights, series = trend
    if len(nights) > 1:
        out["trend"] = charts.trend(nights, series, title="Diversity across nights")
    return out


def _trend(run_dir: Path, s: RunSummary) -> tuple[list[str], dict[str, list[Any]]]:
    """Diversity of this recipe on each earlier night of the same batch (from their
    `report.json`), then tonight. Empty outside a batch layout."""
    if s.night is None:
        return [], {}
    batch_dir, recipe = run_dir.parent.parent, run_dir.name
    nights: list[str] = []
    rows: list[dict[str, float]] = []
    for night_dir in sorted(p for p in batch_dir.iterdir() if DATE_DIR.match(p.name)):
        if night_dir.name >= s.night:
            break
        earlier = load_json(night_dir / recipe / "report.json")
        if earlier.get("diversity"):
            nights.append(night_dir.name)
            rows.append(earlier["diversity"])
    nights.append(s.night)
    rows.append(s.diversity)
    keys = sorted({k for r in rows for k in r})
    return nights, {k: [r.get(k) for r in rows] for k in keys}


def _sample_view(obj: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    meta = obj.get("meta") or {}
    text = text_for(obj.get("data"), fields)
    return {
        "id": str(obj.get("id", "?")),
        "headline": text[:160] + ("…" if len(text) > 160 else ""),
        "reason": meta.get("reject_reason"),
        "data": _pretty(obj.get("data")),
        "lineage": _pretty(meta),
    }


def render(template: str, **context: Any) -> str:
    from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("synth", "templates_html"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=ChainableUndefined,  # manifests vary in age and shape; a gap shows empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["pill"] = pill_class
    return env.get_template(template).render(**context)


def pill_class(status: Any) -> str:
    """The colour of a status badge: green, amber or red."""
    text = str(status).lower()
    if any(w in text for w in ("fail", "error", "cancel")):
        return "fail"
    if any(w in text for w in ("warn", "running", "queued", "partial", "max_", "exhausted")):
        return "warn"
    return "ok" if any(w in text for w in ("ok", "done", "finished", "succeeded")) else ""


def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from disk, or {} when it is missing or half-written."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file that may still be being written (skipping bad lines)."""
    if not path.is_file():
        return
    for _, obj in jsonl_lines(path, tolerant=True):
        if isinstance(obj, dict):
            yield obj


def _get(obj: Mapping[str, Any], *paths: str, default: Any = None) -> Any:
    """The first of several dotted paths present in `obj`: manifests grow over time and
    a report must read old ones too."""
    for p in paths:
        cur: Any = obj
        for part in p.split("."):
            if not isinstance(cur, Mapping) or part not in cur:
                break
            cur = cur[part]
        else:
            return cur
    return default


def _pretty(value: Any, limit: int = 6000) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "\n… (truncated)"


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int(v: Any) -> int | None:
    return int(v) if _is_num(v) else None


def _float(v: Any) -> float | None:
    return float(v) if _is_num(v) else None
