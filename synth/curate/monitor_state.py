"""Where the monitor keeps what it learns across runs: the history of every series
(one JSON line per monitored batch, for the trend rule) in the state dir."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synth.files import jsonl_lines, state_dir


class History:
    """Monitor results per series, one JSON line each, in the state dir."""

    def __init__(self, root: Path | None = None) -> None:
        self.path = (root or state_dir()) / "monitor_history.jsonl"

    def entries(self, series: str) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        # A line cut by a crash is skipped; the rest is kept.
        return [
            entry
            for _, entry in jsonl_lines(self.path, tolerant=True)
            if isinstance(entry, dict) and entry.get("series") == series
        ]

    def first_accepted(self, series: str) -> dict[str, Any] | None:
        return next((e for e in self.entries(series) if e["status"] != "fail"), None)

    def next_generation(self, series: str, generation: int | None) -> int:
        if generation is not None:
            return generation
        gens = [e["generation"] for e in self.entries(series)]
        return max(gens) + 1 if gens else 1

    def append(self, series: str, generation: int | None, report: Mapping[str, Any]) -> None:
        entry = {
            "series": series,
            "generation": generation,
            "batch_id": report.get("batch_id", ""),
            "time": time.time(),
            "status": report["status"],
            "ratios": {
                k: m["ratio"] for k, m in report["metrics"].items() if m["ratio"] is not None
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
