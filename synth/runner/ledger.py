"""What a run has paid for, kept per request so that a budget survives a killed process.

A checkpoint writes the manifest's usage every few seconds, but a process killed between
two checkpoints would forget the calls it made since, and the next process of the run
would spend them again: six kills once made 500 paid calls of a run capped at 168. So
every request round the LLM client finishes (answered or failed) is appended here as it
happens: one short JSON line, `O_APPEND`, whole lines only and no fsync (a killed process
loses nothing the kernel has; a machine crash may lose the last lines, as it may lose the
answers themselves). Each line carries a sequence number and the manifest records the
last one its usage includes, so a resumed run's usage is the manifest's plus the lines
after that number, which is what the provider saw, give or take the calls that were on
their way at the kill. Each checkpoint empties the file (its lines are then in the
manifest), so it stays a few lines long.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from synth.files import jsonl_lines
from synth.llm.accounting import Usage, report

LEDGER = "usage.jsonl"


class Ledger:
    """The usage journal of one run directory (one process writes it at a time: the
    run directory's lock)."""

    def __init__(self, run_dir: Path, *, after: int) -> None:
        self.path = Path(run_dir) / LEDGER
        self.seq = after
        for _, line in self._lines():  # lines a killed process left: keep counting on
            self.seq = max(self.seq, int(line.get("seq", 0)))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, model: str, usage: Usage) -> None:
        """One finished request round: what it sent, what it cost, how it failed."""
        self.seq += 1
        line = {"seq": self.seq, "model": model, **_counts(usage)}
        os.write(self._fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())

    def since(self, seq: int) -> dict[str, Any] | None:
        """The usage (the manifest's `llm` shape) of the lines after `seq`, or None."""
        by_model: dict[str, Usage] = {}
        for _, line in self._lines():
            if int(line.get("seq", 0)) > seq:
                u = by_model.setdefault(str(line.get("model")), Usage())
                u.add(_usage(line))
        return report(by_model) if by_model else None

    def compact(self) -> None:
        """Empty the journal: the manifest just written holds everything in it."""
        os.ftruncate(self._fd, 0)

    def close(self, *, finished: bool = False) -> None:
        """Close it; a finished run's journal is empty (all in the manifest): remove it."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
            if finished and self.path.stat().st_size == 0:
                self.path.unlink()

    def _lines(self) -> list[tuple[int, Any]]:
        if not self.path.is_file():
            return []
        return list(jsonl_lines(self.path))


_FIELDS = ("requests", "input_tokens", "output_tokens", "cost_usd", "failures", "rate_limited")


def _counts(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(u, k) for k in _FIELDS if getattr(u, k)}
    if u.retries:
        out["retries"] = u.retries
    if u.failure_reasons:
        out["failure_reasons"] = dict(u.failure_reasons)
    return out


def _usage(line: dict[str, Any]) -> Usage:
    u = Usage()
    for k in (*_FIELDS, "retries"):
        if k in line:
            setattr(u, k, line[k])
    u.failure_reasons.update(line.get("failure_reasons") or {})
    return u
