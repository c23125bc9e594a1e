"""The trace of a run: every model call, as it was asked and as it was answered.

Lineage says *that* a record cost two calls; the trace says what the model was asked and
what it said, so a user can see why a record was kept or rejected and fix the prompt.
`LLMClient` writes one JSON line per call (cache hits, shared in-flight answers and failed
calls included) to `traces.jsonl` in the run directory; a record's `meta["llm_calls"]`
entries carry the `call_id` of their line, so `data.jsonl` stays small.

Writes follow the run directory's rules: one `os.write` of whole lines on an `O_APPEND`
descriptor, so a killed run leaves at most a torn last line (readers skip it) and a
resumed run appends. There is no fsync per line: a trace is a debugging aid, and a call
that is lost with the page cache is a cache hit, traced again, on resume.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets as _random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synth.redaction import redact

TRACES = "traces.jsonl"


class TraceSink:
    """Appends trace lines to one file; ids are `<8 hex of this process>-<sequence>`, so
    they stay unique across the shards and resumed processes that write one run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        _cut_torn_line(self.path)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._prefix = _random.token_hex(4)
        self._seq = itertools.count(1)

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._seq):06d}"

    def record(self, *, secrets: Iterable[str] = (), **call: Any) -> str:
        """Write one call's line (see `entry` for what `call` holds); returns its id."""
        call_id = self.new_id()
        self.write(entry(call_id, **call), secrets)
        return call_id

    def write(self, entry: dict[str, Any], secrets: Iterable[str] = ()) -> None:
        """One line; API keys anywhere in it (messages, answer, error) become `***`."""
        if self._fd is None:
            return
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)
        line = redact(line, _escaped(secrets))
        view = memoryview((line + "\n").encode("utf-8"))
        while view:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_traces(path: str | Path) -> Iterator[dict[str, Any]]:
    """The calls of a trace file, in the order they were made (a torn last line skipped)."""
    from synth.files import jsonl_lines

    if not Path(path).is_file():
        return
    for _, obj in jsonl_lines(path, what="a trace line"):
        if isinstance(obj, dict):
            yield obj


def calls_by_id(path: str | Path, wanted: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The trace lines of the calls in `wanted`, read in one pass."""
    want = set(wanted)
    out: dict[str, dict[str, Any]] = {}
    if not want:
        return out
    for obj in read_traces(path):
        cid = obj.get("call_id")
        if cid in want:
            out[cid] = obj
    return out


def _cut_torn_line(path: Path) -> None:
    """Drop the unfinished last line a killed process left, so that what a resumed run
    appends starts on a line of its own."""
    if not path.is_file():
        return
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        end = size
        while end > 0:  # back to the last newline, 64 KiB at a time
            start = max(0, end - (1 << 16))
            fh.seek(start)
            nl = fh.read(end - start).rfind(b"\n")
            if nl >= 0:
                fh.truncate(start + nl + 1)
                return
            end = start
        fh.truncate(0)


def _escaped(secrets: Iterable[str]) -> list[str]:
    """Each secret as written raw and as JSON escapes it (a key holding a quote or a
    backslash appears escaped in the line)."""
    out: list[str] = []
    for s in secrets:
        out.append(s)
        quoted = json.dumps(s, ensure_ascii=False)[1:-1]
        if quoted != s:
            out.append(quoted)
    return sorted(set(out), key=len, reverse=True)


def entry(
    call_id: str,
    *,
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    n_index: int,
    key: str,
    latency_s: float,
    completion: Any = None,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """One trace line: the request as sent (messages, sampling parameters, sample index),
    then the raw answer with its `finish_reason`, tokens, cost and cached-or-not, or the
    error the call ended with. `request_key` is the response cache's key: equal keys are
    the same request. `latency_s` runs from asking to the answer, waiting for admission
    (rate limits, the one local model) included: what the call cost the run in time."""
    out: dict[str, Any] = {
        "call_id": call_id,
        "model": model,
        "messages": messages,
        "params": params,
        "n_index": n_index,
        "request_key": key[:16],
    }
    if completion is not None:
        c = completion
        out.update(
            answer=c.text,
            finish_reason=c.finish_reason,
            cached=c.cached,
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            cost_usd=round(c.cost_usd, 8),
        )
    if error is not None:
        what = "cancelled before its answer was used" if _cancelled(error) else str(error)
        out.update(cached=False, error=f"{type(error).__name__}: {what}"[:2000])
    out["latency_s"] = round(latency_s, 4)
    return out


def _cancelled(error: BaseException) -> bool:
    import asyncio

    return isinstance(error, asyncio.CancelledError)
