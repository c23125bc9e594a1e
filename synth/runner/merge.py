"""Merging the part directories of a sharded run into one dataset and one manifest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from synth.runner.engine import COMPLETE, DONE, EXHAUSTED, Tally
from synth.runner.rundir import (
    DATA,
    PARTS,
    REJECTS,
    TRACES,
    RunDir,
    describe_files,
    diversity_of,
    rates,
    read_manifest,
)


def merge(
    top: RunDir, parts: list[Path], manifests: list[dict[str, Any]], *, elapsed: float
) -> dict[str, Any]:
    """Concatenate the parts into `data.jsonl` / `rejects.jsonl` / `traces.jsonl` (temp +
    rename; a part without a trace adds nothing), sum the counters, and finish the top
    manifest. Parts are removed only when every shard is
    complete, so a budget-stopped sharded run keeps what it needs to continue."""
    for name in (DATA, REJECTS, TRACES):
        present = [p for p in parts if name != TRACES or (p / name).is_file()]
        if name == TRACES and not present:
            continue
        tmp = top.path / (name + ".tmp")
        with open(tmp, "wb") as dst:
            for part in present:
                with open(part / name, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, top.path / name)
    tally = Tally()
    stats: dict[str, int] = {}
    for m in manifests:
        t = Tally.from_dict(m.get("counts", {}))
        tally.generated += t.generated
        tally.kept += t.kept
        tally.rejected += t.rejected
        tally.by_reason.update(t.by_reason)
        for k, v in (m.get("stats") or {}).items():
            stats[k] = stats.get(k, 0) + v
    reasons = [m.get("stop_reason") or DONE for m in manifests]
    tally.stop_reason = next((r for r in reasons if r not in COMPLETE), None) or (
        EXHAUSTED if EXHAUSTED in reasons else DONE
    )
    files = describe_files(top.path, (DATA, REJECTS, TRACES))
    top.update(
        status="finished",
        stop_reason=tally.stop_reason,
        counts=tally.to_dict(),
        stats=stats,
        shards=[
            {
                "shard": m.get("shard"),
                "stop_reason": m.get("stop_reason"),
                "counts": m.get("counts"),
                "elapsed_s": (m.get("durations") or {}).get("total_s"),
            }
            for m in manifests
        ],
        durations={**top.manifest.get("durations", {}), "total_s": elapsed},
        records_per_s=rates(tally, elapsed),
        checkpoint={
            "data_bytes": files[DATA]["bytes"],
            "rejects_bytes": files[REJECTS]["bytes"],
            "index": None,
            "ids": [],
        },
        files=files,
        diversity=diversity_of(top.path / DATA),
        llm=sum_usage([m.get("llm") for m in manifests]),
    )
    if tally.stop_reason in COMPLETE:
        shutil.rmtree(top.path / PARTS, ignore_errors=True)
    return top.manifest


def progress_of(parts: list[Path], n: int, elapsed: float) -> dict[str, Any]:
    total = Tally()
    usages: list[Any] = []
    for part in parts:
        try:
            m = read_manifest(part) or {}
        except Exception:  # a manifest being replaced right now: skip this poll
            continue
        t = Tally.from_dict(m.get("counts", {}))
        total.generated += t.generated
        total.kept += t.kept
        total.rejected += t.rejected
        usages.append(m.get("llm"))
    return {"n": n, **total.to_dict(), "elapsed_s": elapsed, "llm": sum_usage(usages)}


def sum_usage(usages: list[Any]) -> Any:
    """Add up the LLM layer's usage dicts (numbers summed, nested dicts merged)."""
    present = [u for u in usages if isinstance(u, dict)]
    if not present:
        return None
    out: dict[str, Any] = {}
    for u in present:
        for k, v in u.items():
            if isinstance(v, bool) or not isinstance(v, int | float | dict):
                out.setdefault(k, v)
            elif isinstance(v, dict):
                out[k] = sum_usage([out.get(k), v])
            else:
                out[k] = out.get(k, 0) + v
    return out
