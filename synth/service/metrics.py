"""`/metrics` in the Prometheus text format (0.0.4): jobs by status, and records, rejects
by reason, LLM calls, 429s, cache hits, tokens and cost summed over the service's jobs.

The sums come from each job's last checkpointed manifest, so they are exact for finished
jobs and at most half a second behind for running ones. They are totals since the state
dir was created: a restarted service reports the same numbers, as a counter should."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from synth.service.jobs import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job


def render(jobs: Iterable[Job]) -> str:
    status: Counter[str] = Counter({s: 0 for s in (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)})
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    cost_usd = 0.0
    for job in jobs:
        status[job.status] += 1
        p = job.progress
        for k in ("kept", "generated", "rejected"):
            totals[k] += int(p.get(k, 0))
        reasons.update({str(r): int(c) for r, c in (p.get("rejected_by_reason") or {}).items()})
        llm, cost = p.get("llm") or {}, p.get("cost") or {}
        for k in ("calls", "requests", "cache_hits", "rate_limited", "failures"):
            totals[f"llm_{k}"] += int(llm.get(k, 0) or 0)
        totals["input_tokens"] += int(cost.get("input_tokens", 0) or 0)
        totals["output_tokens"] += int(cost.get("output_tokens", 0) or 0)
        cost_usd += float(cost.get("usd", 0.0) or 0.0)

    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_num(v)}" for labels, v in samples)

    metric("synth_jobs", "gauge", "Jobs by status.",
           [(f'{{status="{s}"}}', c) for s, c in sorted(status.items())])  # fmt: skip
    metric("synth_records_kept_total", "counter", "Records that passed every verifier.",
           [("", totals["kept"])])  # fmt: skip
    metric("synth_records_generated_total", "counter", "Candidate records generated.",
           [("", totals["generated"])])  # fmt: skip
    metric("synth_rejects_total", "counter", "Rejected records by reason.",
           [(f'{{reason="{_label(r)}"}}', c) for r, c in sorted(reasons.items())]
           or [('{reason="none"}', 0)])  # fmt: skip
    metric("synth_llm_calls_total", "counter", "LLM answers asked for (cache hits included).",
           [("", totals["llm_calls"])])  # fmt: skip
    metric("synth_llm_requests_total", "counter", "LLM requests sent (retries included).",
           [("", totals["llm_requests"])])  # fmt: skip
    metric("synth_llm_rate_limited_total", "counter", "HTTP 429 answers from model providers.",
           [("", totals["llm_rate_limited"])])  # fmt: skip
    metric("synth_llm_failures_total", "counter", "LLM calls that finally failed.",
           [("", totals["llm_failures"])])  # fmt: skip
    metric("synth_llm_cache_hits_total", "counter", "LLM answers served from the cache.",
           [("", totals["llm_cache_hits"])])  # fmt: skip
    metric("synth_llm_tokens_total", "counter", "LLM tokens by direction.",
           [('{direction="input"}', totals["input_tokens"]),
            ('{direction="output"}', totals["output_tokens"])])  # fmt: skip
    metric("synth_llm_cost_usd_total", "counter", "LLM cost in US dollars.",
           [("", cost_usd)])  # fmt: skip
    return "\n".join(out) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
