"""`/metrics` in the Prometheus text format (0.0.4): jobs by status, and per recipe and
model the records kept and rejected by reason, LLM calls, 429s, retries, cache hits,
tokens, cost, and histograms of model-call latency and run duration
(`synth.report.metrics` holds the names; `synth run --metrics-file` writes the same).

The sums come from each job's last checkpointed manifest (`counts`, `llm.by_model`), so
they are exact for finished jobs and at most half a second behind for running ones. They
are totals since the state dir was created: a restarted service reports the same numbers,
as a counter should. Latencies come from the records' lineage, read incrementally: a
scrape reads only what the jobs appended since the previous one."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from synth.report.metrics import LatencyScan, Runs
from synth.report.run import load_json
from synth.service.jobs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job

_SCANS: dict[str, LatencyScan] = {}
_LOCK = threading.Lock()  # scrapes run in worker threads; one scan of a file at a time


def render(jobs: Iterable[Job]) -> str:
    status: Counter[str] = Counter({s: 0 for s in (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)})
    runs = Runs()
    with _LOCK:
        for job in jobs:
            status[job.status] += 1
            run_dir = Path(job.run_dir)
            manifest = load_json(run_dir / "manifest.json")
            if not manifest.get("counts"):  # not checkpointed yet (or sharded): the job's view
                p = job.progress
                manifest = {**manifest, "counts": p, "llm": manifest.get("llm") or p.get("llm")}
            scan = _SCANS.get(job.run_dir)
            if scan is None:
                scan = _SCANS[job.run_dir] = LatencyScan(run_dir)
            recipe = (manifest.get("recipe") or {}).get("name") or job.spec.get("recipe")
            runs.add(manifest, scan.update(), recipe=str(recipe or "unknown"))
    runs.jobs = dict(status)
    return runs.text()
