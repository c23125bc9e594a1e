"""Runs as Prometheus metrics: the service's `/metrics` and the node-exporter textfile
that `synth run --metrics-file` and `synth batch --metrics-file` write.

Both say the same thing in the same names, so one dashboard serves a service and a cron
job: records kept and rejected by reason per recipe; LLM calls, requests, 429s, retries,
failures, cache hits, tokens and cost per recipe and model (from each manifest's
`llm.by_model`); and histograms of model-call latency (from the records' lineage,
`meta.llm_calls[*].latency_s`, cached answers left out) and of run duration.

Counters are totals over the runs given, so they only grow while runs are added; the
text is produced by `prometheus_client`, so escaping and the format are its job.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 86400.0)
RECORD_FILES = ("data.jsonl", "rejects.jsonl")
# (metric name without _total, manifest usage key, help)
_LLM_COUNTERS = (
    ("synth_llm_calls", "calls", "LLM answers asked for (cache hits included)."),
    ("synth_llm_requests", "requests", "LLM requests sent (retries included)."),
    ("synth_llm_rate_limited", "rate_limited", "HTTP 429 answers from model providers."),
    ("synth_llm_retries", "retries", "LLM requests retried after a transient error."),
    ("synth_llm_failures", "failures", "LLM calls that finally failed."),
    ("synth_llm_cache_hits", "cache_hits", "LLM answers served from the cache."),
)


@dataclass
class Histogram:
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.buckets) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.n += other.n

    def cumulative(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for le, c in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += c
            out.append((le, float(running)))
        return out


@dataclass
class LatencyScan:
    """Model-call latencies of one run directory, read incrementally: a scrape of a
    running job reads only the lines appended since the last one."""

    run_dir: Path
    offsets: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, Histogram] = field(default_factory=dict)

    def update(self) -> dict[str, Histogram]:
        for name in RECORD_FILES:
            path = self.run_dir / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size < self.offsets.get(name, 0):  # rewritten (--force): start over
                self.offsets.clear()
                self.by_model.clear()
                return self.update()
            with open(path, "rb") as fh:
                fh.seek(self.offsets.get(name, 0))
                for line in fh:
                    if not line.endswith(b"\n"):
                        break  # a line being written: read it next time
                    self.offsets[name] = self.offsets.get(name, 0) + len(line)
                    if b'"latency_s"' in line:
                        self._add(line)
        return self.by_model

    def _add(self, line: bytes) -> None:
        try:
            meta = json.loads(line).get("meta") or {}
        except (ValueError, AttributeError):
            return
        for call in meta.get("llm_calls") or []:
            if not isinstance(call, dict) or call.get("cached"):
                continue
            latency = call.get("latency_s")
            if isinstance(latency, int | float) and math.isfinite(latency) and latency >= 0:
                hist = self.by_model.setdefault(
                    str(call.get("model") or "?"), Histogram(LATENCY_BUCKETS)
                )
                hist.observe(float(latency))


@dataclass(eq=False)  # hashable: a prometheus_client registry keys collectors by identity
class Runs:
    """Sums over runs, keyed by recipe (and model, and reason)."""

    counters: dict[tuple[str, tuple[str, ...]], float] = field(default_factory=dict)
    latency: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    duration: dict[str, Histogram] = field(default_factory=dict)
    jobs: dict[str, int] | None = None

    def add(
        self,
        manifest: Mapping[str, Any],
        latency: Mapping[str, Histogram] | None = None,
        *,
        recipe: str | None = None,
    ) -> None:
        rec = recipe or str((manifest.get("recipe") or {}).get("name") or "unknown")
        counts = manifest.get("counts") or {}
        self._inc("synth_records_kept", (rec,), counts.get("kept"))
        self._inc("synth_records_generated", (rec,), counts.get("generated"))
        for reason, c in (counts.get("rejected_by_reason") or {}).items():
            self._inc("synth_rejects", (rec, str(reason)), c)
        llm = manifest.get("llm") or {}
        by_model = llm.get("by_model") or (
            {str(manifest.get("model") or "unknown"): llm} if llm.get("calls") else {}
        )
        for model, usage in by_model.items():
            if not isinstance(usage, Mapping):
                continue
            for name, key, _ in _LLM_COUNTERS:
                self._inc(name, (rec, model), usage.get(key))
            self._inc("synth_llm_tokens", (rec, model, "input"), usage.get("input_tokens"))
            self._inc("synth_llm_tokens", (rec, model, "output"), usage.get("output_tokens"))
            self._inc("synth_llm_cost_usd", (rec, model), usage.get("cost_usd"))
        for model, hist in (latency or {}).items():
            self.latency.setdefault((rec, model), Histogram(LATENCY_BUCKETS)).add(hist)
        seconds = (manifest.get("durations") or {}).get("total_s")
        if manifest.get("status") == "finished" and isinstance(seconds, int | float):
            self.duration.setdefault(rec, Histogram(DURATION_BUCKETS)).observe(float(seconds))

    def add_run_dir(self, run_dir: str | Path, *, recipe: str | None = None) -> None:
        run_dir = Path(run_dir)
        try:
            manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(manifest, dict):
            self.add(manifest, LatencyScan(run_dir).update(), recipe=recipe)

    def _inc(self, name: str, labels: tuple[str, ...], value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            key = (name, labels)
            self.counters[key] = self.counters.get(key, 0.0) + float(value)

    def collect(self) -> Iterable[Any]:
        """The metric families, for a `prometheus_client` registry."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        if self.jobs is not None:
            g = GaugeMetricFamily("synth_jobs", "Jobs by status.", labels=["status"])
            for status, jobs in sorted(self.jobs.items()):
                g.add_metric([status], jobs)
            yield g
        specs = [
            ("synth_records_kept", "Records that passed every verifier.", ["recipe"]),
            ("synth_records_generated", "Candidate records generated.", ["recipe"]),
            ("synth_rejects", "Rejected records by reason.", ["recipe", "reason"]),
            *((name, help_, ["recipe", "model"]) for name, _, help_ in _LLM_COUNTERS),
            ("synth_llm_tokens", "LLM tokens by direction.", ["recipe", "model", "direction"]),
            ("synth_llm_cost_usd", "LLM cost in US dollars.", ["recipe", "model"]),
        ]
        for name, help_, labels in specs:
            c = CounterMetricFamily(name, help_, labels=labels)
            for (metric, values), v in sorted(self.counters.items()):
                if metric == name:
                    c.add_metric(list(values), v)
            yield c
        h = HistogramMetricFamily(
            "synth_llm_call_latency_seconds",
            "Latency of LLM calls that reached the model (cache hits left out).",
            labels=["recipe", "model"],
        )
        for (rec, model), hist in sorted(self.latency.items()):
            h.add_metric([rec, model], hist.cumulative(), sum_value=hist.total)
        yield h
        d = HistogramMetricFamily(
            "synth_run_duration_seconds", "Wall time of finished runs.", labels=["recipe"]
        )
        for rec, hist in sorted(self.duration.items()):
            d.add_metric([rec], hist.cumulative(), sum_value=hist.total)
        yield d

    def text(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return generate_latest(registry).decode("utf-8")


def write_textfile(path: str | Path, runs: Runs) -> Path:
    """A node-exporter textfile collector file, replaced atomically so the exporter never
    reads half of it (it must end in `.prom` for node-exporter to pick it up)."""
    from synth.files import write_text_atomic

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, runs.text())
    return target
