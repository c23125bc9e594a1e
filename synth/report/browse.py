"""The record browser inside `report.html`: a bounded, deterministic sample of records
with their full JSON, and the trace lines of the model calls that made them.

A run can hold 100k records; the page cannot. So the report embeds at most `BROWSE`
kept and `BROWSE` rejected records, chosen by a reservoir sample with a fixed seed (the
same run gives the same page), and says so. The records travel as one JSON data block
(`<script type="application/json">`, which a browser never executes) with every `<`, `>`
and `&` escaped, so record text cannot close the block; the one script that reads it is
pinned by its hash in the page's Content-Security-Policy, so nothing else can run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synth.files import jsonl_lines
from synth.text.lexical import text_of

BROWSE = 500  # records of each kind (kept, rejected) embedded in the page
TRACES = "traces.jsonl"
TRACE_SCAN_LIMIT = 2_000_000  # lines of traces.jsonl read looking for the sampled calls
_JS = Path(__file__).resolve().parents[1] / "templates_html" / "browse.js"


def browser_rows(kept: Iterable[dict[str, Any]], rejected: Iterable[dict[str, Any]]) -> list[Any]:
    """Compact rows for the page: [id, kept?, reason, headline, record]."""
    rows: list[Any] = []
    for ok, objs in ((True, kept), (False, rejected)):
        for obj in objs:
            meta = _meta(obj)
            text = text_of(obj.get("data"))
            rows.append(
                [
                    str(obj.get("id", "?")),
                    ok,
                    None if ok else str(meta.get("reject_reason") or _last_reason(meta) or "?"),
                    text[:200],
                    obj,
                ]
            )
    return rows


def trace_ids(objs: Iterable[dict[str, Any]]) -> set[str]:
    """The trace ids a record's lineage names (`meta.llm_calls[*].trace`)."""
    ids: set[str] = set()
    for obj in objs:
        meta = _meta(obj)
        for call in meta.get("llm_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("trace"), str | int):
                ids.add(str(call["trace"]))
    return ids


def load_traces(run_dir: Path, wanted: set[str]) -> dict[str, Any]:
    """The lines of `traces.jsonl` whose `id` is wanted; {} when the file is absent,
    partial or in an older shape (a report never fails because tracing was off)."""
    if not wanted:
        return {}
    out: dict[str, Any] = {}
    for i, obj in enumerate(_jsonl(run_dir / TRACES)):
        if i >= TRACE_SCAN_LIMIT or len(out) == len(wanted):
            break
        key = obj.get("id")
        if key is not None and str(key) in wanted:
            out[str(key)] = obj
    return out


def data_block(payload: Any) -> str:
    """JSON safe to put between `<script type="application/json">` tags."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str)
    for raw, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(raw, esc)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def script() -> tuple[str, str]:
    """The browser's script and its CSP source expression ('sha256-...')."""
    code = _JS.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode()
    return code, f"'sha256-{digest}'"


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("meta")
    return meta if isinstance(meta, dict) else {}


def _last_reason(meta: dict[str, Any]) -> str | None:
    for v in reversed(meta.get("verdicts") or []):
        if isinstance(v, dict) and not v.get("ok"):
            return str(v.get("reason"))
    return None


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The objects of a JSONL file that may still be being written (skipping bad lines)."""
    if not path.is_file():
        return
    for _, obj in jsonl_lines(path, tolerant=True):
        if isinstance(obj, dict):
            yield obj
