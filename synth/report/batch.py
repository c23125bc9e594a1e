"""`report.html` for one night of a batch: every entry's status and numbers, the diff
against the previous night, and trends across all nights (kept records, cost, diversity),
self-contained like a run report, with links to each entry's own report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synth.files import write_text_atomic
from synth.report import charts
from synth.report.run import DATE_DIR, load_json, render

MAX_NIGHTS = 60
TREND_METRICS = ("distinct_2", "distinct_4", "compression_ratio", "self_bleu")


def write_batch_report(night: str | Path, *, out: str | Path | None = None) -> Path:
    night = Path(night)
    manifest = load_json(night / "batch.json")
    entries = manifest.get("recipes") or {}
    history = _history(night)
    html = render(
        "batch.html",
        m=manifest,
        entries=entries,
        links={k: (night / k / "report.html").is_file() for k in entries},
        diff=_diff_rows(manifest.get("diff") or {}),
        diff_columns=[label for _, label in DIFF_COLUMNS],
        charts=_charts(history, entries, night.parent),
        nights=[d for d, _ in history],
        manifest_json=json.dumps(manifest, indent=2, ensure_ascii=False, default=str),
    )
    target = Path(out) if out is not None else night / "report.html"
    write_text_atomic(target, html)
    return target


def _history(night: Path) -> list[tuple[str, dict[str, Any]]]:
    """(date, batch manifest) of every night up to this one, oldest first."""
    base = night.parent
    dates = sorted(
        p.name for p in base.iterdir() if DATE_DIR.match(p.name) and p.name <= night.name
    )
    out = []
    for d in dates[-MAX_NIGHTS:]:
        m = load_json(base / d / "batch.json")
        if m:
            out.append((d, m))
    return out


def _charts(
    history: list[tuple[str, dict[str, Any]]], entries: dict[str, Any], base: Path
) -> dict[str, str]:
    out: dict[str, str] = {}
    if entries:
        names = list(entries)
        out["kept tonight"] = charts.bars(
            names,
            [entries[k].get("kept", 0) for k in names],
            title="Records kept tonight",
            color="#2563eb",
        )
    if len(history) < 2:
        return out
    dates = [d for d, _ in history]
    names = sorted({k for _, m in history for k in m.get("recipes") or {}})

    def series(key: str) -> dict[str, list[Any]]:
        return {
            k: [(m.get("recipes") or {}).get(k, {}).get(key) for _, m in history] for k in names
        }

    out["kept per night"] = charts.trend(dates, series("kept"), title="Kept records per night")
    out["repeats"] = charts.trend(
        dates, series("seen_before"), title="Repeats of earlier nights rejected (seen_before)"
    )
    costs = {"total": [m.get("totals", {}).get("cost_usd", 0.0) for _, m in history]}
    out["cost"] = charts.trend(dates, costs, title="Cost per night", ylabel="USD")
    diversity = {
        (d, name): load_json(base / d / name / "report.json").get("diversity") or {}
        for d, _ in history
        for name in names
    }
    for metric in TREND_METRICS:
        rows: dict[str, list[Any]] = {}
        for name in names:
            values = [diversity[d, name].get(metric) for d, _ in history]
            if any(v is not None for v in values):
                rows[name] = values
        if rows:
            out[f"diversity {metric}"] = charts.trend(dates, rows, title=f"{metric} of kept text")
    return out


DIFF_COLUMNS = (
    ("kept", "kept"),
    ("rejected", "rejected"),
    ("seen_before", "repeats"),
    ("cost_usd", "cost (USD)"),
    ("diversity.distinct_2", "distinct-2"),
    ("diversity.compression_ratio", "compression"),
    ("diversity.self_bleu", "self-BLEU"),
)


def _diff_rows(diff: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per entry; a cell per metric with previous, tonight and the change."""
    return [
        {"entry": name, "cells": [metrics.get(key) for key, _ in DIFF_COLUMNS]}
        for name, metrics in (diff.get("recipes") or {}).items()
    ]
