"""The live progress line of `synth run` and `synth batch`, and the rate both it and the
final summary print.

What a person watching a run wants to know is whether to wait or stop it: how many
records passed of those generated, how many are rejected, what it has cost so far and
what it will cost at `n` at this pass rate, and how fast it goes. A rate is shown so it
never rounds to zero: "12 records/s", "0.4 records/s", "1 record / 12 s".
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def rate_text(count: float, seconds: float, unit: str = "record") -> str:
    """`count` per `seconds`, readable at any speed."""
    if seconds <= 0 or count <= 0:
        return f"0 {unit}s/s"
    rate = count / seconds
    if rate >= 10:
        return f"{rate:,.0f} {unit}s/s"
    if rate >= 0.1:
        return f"{rate:.1f} {unit}s/s"
    return f"1 {unit} / {_duration(1 / rate)}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def progress_text(p: dict[str, Any], n: int) -> str:
    """One line: kept/n, generated and rejection rate, tokens, cost so far and projected
    to n (at the pass rate so far), and the rate of kept records."""
    kept, generated = int(p.get("kept") or 0), int(p.get("generated") or 0)
    rejected = int(p.get("rejected") or 0)
    n = int(p.get("n") or n)
    elapsed = float(p.get("elapsed_s") or 0.0)
    parts = [f"{kept}/{n} kept", f"{generated} generated"]
    if generated:
        parts.append(f"{100 * rejected / generated:.0f}% rejected")
    llm = p.get("llm") if isinstance(p.get("llm"), dict) else {}
    if llm:
        tokens = int(llm.get("input_tokens") or 0) + int(llm.get("output_tokens") or 0)
        cost = float(llm.get("cost_usd") or 0.0)
        scale = n / kept if kept else None
        parts.append(f"{tokens:,} tokens" + (f" (~{tokens * scale:,.0f} at n)" if scale else ""))
        parts.append(f"${cost:.4f}" + (f" (~${cost * scale:.4f} at n)" if scale else ""))
    parts.append(rate_text(kept, elapsed))
    if kept and kept < n and elapsed:
        parts.append(f"~{_duration((n - kept) * elapsed / kept)} left")
    return ", ".join(parts)


class Progress:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise. The
    last update of a finished run is not printed: the summary that follows says it."""

    def __init__(self, n: int, *, enabled: bool, every: float | None = None) -> None:
        if every is None:  # a CI log may want a line a minute, a test one per update
            every = float(os.environ.get("SYNTH_PROGRESS_SECONDS", 5.0))
        self.n, self.enabled, self.every = n, enabled, every
        self.last = time.monotonic()  # the first line after `every` s, not at once
        self.bar: Any = None
        self.task: Any = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("[bold]synth[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(stderr=True),
                transient=True,  # the summary line replaces it
            )
            self.bar.start()
            self.task = self.bar.add_task("run", total=n, detail="")

    def update(self, p: dict[str, Any]) -> None:
        if not self.enabled or p.get("done"):
            return
        line = progress_text(p, self.n)
        if self.bar is not None:
            detail = line.split(", ", 1)[1] if ", " in line else line
            self.bar.update(self.task, completed=p.get("kept", 0), detail=detail)
            return
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(f"synth: {line}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
