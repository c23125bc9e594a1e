"""`synth show RUN RECORD_ID`: one record's whole story, from its source to its verdict.

A rejection counter says *how many*; to fix a prompt or a verifier a user needs *this*
record: what the model was asked and what it said (from the run's `traces.jsonl`), which
verifier said no and why, where it came from and what was derived from it. Reads the
run's files once each, in bounded memory apart from the record's own calls.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

_FILES = (("kept", "data.jsonl"), ("rejected", "rejects.jsonl"))
_LINEAGE = ("generator", "template", "source", "index", "seed", "locale", "sample")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "show",
        help="one record's story: kept or rejected, prompts, answers, verdicts, lineage",
        description="Print everything a run knows about one record: whether it was kept "
        "or rejected and why, its source and data, each model call's messages and raw "
        "answer (from traces.jsonl), every verdict with its reason, its parents and the "
        "records derived from it. RECORD_ID may be a unique prefix of the id.",
    )
    p.add_argument("run", help="a run directory, e.g. out/demo")
    p.add_argument("record_id", help="a record id (or a unique prefix) from data/rejects.jsonl")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    story = record_story(Path(args.run), args.record_id)
    if args.json:
        print(json.dumps(story, indent=2, ensure_ascii=False, default=str))
    else:
        print(render(story))
    return 0


def record_story(run_dir: Path, record_id: str) -> dict[str, Any]:
    """Everything about one record, as a plain dict (what `--json` prints)."""
    from synth.errors import ConfigError

    _check_run(run_dir)
    wanted = record_id.strip()
    found: list[tuple[str, dict[str, Any]]] = []
    status_of: dict[str, str] = {}
    children: list[dict[str, Any]] = []
    for status, name in _FILES:
        for obj in _lines(run_dir / name):
            rid = str(obj.get("id"))
            if rid == wanted or (rid.startswith(wanted) and len(wanted) >= 4):
                found.append((status, obj))
            status_of[rid] = status
    exact = [f for f in found if str(f[1].get("id")) == wanted]
    if exact:
        found = exact
    if not found:
        raise ConfigError(
            f"no record {wanted!r} in this run",
            file=str(run_dir),
            path="record_id",
            expected="the id of a record in data.jsonl or rejects.jsonl (or a unique prefix)",
            found=wanted,
            fix=f"list ids with: head {run_dir / 'data.jsonl'} (or rejects.jsonl)",
        )
    if len({str(o.get("id")) for _, o in found}) > 1:
        ids = sorted({str(o.get("id")) for _, o in found})
        raise ConfigError(
            f"{wanted!r} is the start of {len(ids)} record ids",
            file=str(run_dir),
            path="record_id",
            expected="a unique prefix",
            found=ids[:5],
            fix="give more characters of the id",
        )
    status, obj = found[0]
    rid, meta = str(obj["id"]), obj.get("meta") or {}
    for s, name in _FILES:
        for other in _lines(run_dir / name):
            if rid in ((other.get("meta") or {}).get("parents") or []):
                children.append({"id": other.get("id"), "status": s})
    calls = _trace_calls(run_dir, meta)
    parents = [
        {"id": p, "status": status_of.get(str(p), "not written (a source or intermediate record)")}
        for p in meta.get("parents") or []
    ]
    return {
        "run": str(run_dir),
        "id": rid,
        "status": status,
        "reject_reason": meta.get("reject_reason"),
        "error": meta.get("error"),
        "lineage": {k: meta[k] for k in _LINEAGE if k in meta},
        "data": obj.get("data"),
        "llm_fields": meta.get("llm_fields") or [],
        "calls": [_call_view(c, calls) for c in meta.get("llm_calls") or []],
        "verdicts": [
            {**v, "calls": [_call_view(c, calls) for c in _nested_calls(v)]}
            for v in meta.get("verdicts") or []
            if isinstance(v, dict)
        ],
        "parents": parents,
        "children": children,
        "traced": (run_dir / _traces_name()).is_file(),
    }


def render(s: dict[str, Any]) -> str:
    out = [f"record {s['id']} in {s['run']}"]
    verdict = "KEPT" if s["status"] == "kept" else f"REJECTED ({s['reject_reason']})"
    out.append(f"  {verdict}")
    if s["error"]:
        out.append(f"  step failure: {s['error'].get('detail') or s['error']}")
    if s["lineage"]:
        out.append("  " + ", ".join(f"{k}: {v}" for k, v in s["lineage"].items()))
    out += ["", "data:", _indent(json.dumps(s["data"], indent=2, ensure_ascii=False))]
    if s["llm_fields"]:
        out.append(f"  (written by the model: {', '.join(s['llm_fields'])})")
    for i, call in enumerate(s["calls"], 1):
        out += ["", f"model call {i}:", *_render_call(call, s["traced"])]
    out += ["", "verdicts:"]
    if not s["verdicts"]:
        out.append("  (none)")
    for v in s["verdicts"]:
        mark = "ok  " if v.get("ok") else "FAIL"
        score = "" if v.get("score") is None else f" score {v['score']:g}"
        reason = f": {v['reason']}" if v.get("reason") else ""
        out.append(f"  {mark} {v.get('verifier')}{score}{reason}")
        if v.get("detail"):
            out.append(f"       {v['detail']}")
        for call in v["calls"]:
            out += _render_call(call, s["traced"], pad="       ")
    out += ["", "parents:"]
    out += [f"  {p['id']} ({p['status']})" for p in s["parents"]] or ["  (none: a source record)"]
    out += ["children:"]
    out += [f"  {c['id']} ({c['status']})" for c in s["children"]] or ["  (none)"]
    return "\n".join(out)


def _render_call(call: dict[str, Any], traced: bool, pad: str = "  ") -> list[str]:
    e = call["lineage"]
    head = (
        f"{pad}{e.get('model')}  {'cached' if e.get('cached') else 'fresh'}  "
        f"{e.get('input_tokens', 0)}+{e.get('output_tokens', 0)} tokens  "
        f"${e.get('cost_usd', 0):.6f}  {e.get('latency_s', 0):.2f}s"
    )
    lines = [head]
    t = call.get("trace")
    if t is None:
        why = "its call_id is not in traces.jsonl" if traced else "the run kept no trace"
        return [*lines, f"{pad}(prompt and answer unknown: {why})"]
    if t.get("params"):
        lines.append(f"{pad}params: {json.dumps(t['params'], ensure_ascii=False)}")
    for m in t.get("messages") or []:
        lines.append(f"{pad}[{m.get('role')}]")
        lines.append(_indent(str(m.get("content")), pad + "  "))
    if "answer" in t:
        lines.append(f"{pad}[answer] (finish_reason: {t.get('finish_reason')})")
        lines.append(_indent(str(t["answer"]), pad + "  "))
    if t.get("error"):
        lines.append(f"{pad}[error] {t['error']}")
    for earlier in call.get("earlier") or []:
        lines.append(f"{pad}re-asked after: {str(earlier.get('answer', earlier.get('error')))!r}")
    return lines


def _call_view(entry: Any, calls: dict[str, dict[str, Any]]) -> dict[str, Any]:
    entry = entry if isinstance(entry, dict) else {}
    ids = entry.get("call_ids") or ([entry["call_id"]] if entry.get("call_id") else [])
    return {
        "lineage": entry,
        "trace": calls.get(ids[-1]) if ids else None,
        "earlier": [calls[i] for i in ids[:-1] if i in calls],
    }


def _nested_calls(v: dict[str, Any]) -> list[dict[str, Any]]:
    """Lineage entries of a verifier's own model calls (a judge keeps them in `info`)."""
    found: list[dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if "call_id" in x:
                found.append(x)
                return
            for y in x.values():
                walk(y)
        elif isinstance(x, list):
            for y in x:
                walk(y)

    walk(v.get("info"))
    return found


def _trace_calls(run_dir: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from synth.llm.trace import calls_by_id

    ids: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            ids.extend(str(i) for i in x.get("call_ids") or [])
            if x.get("call_id"):
                ids.append(str(x["call_id"]))
            for y in x.values():
                walk(y)
        elif isinstance(x, list):
            for y in x:
                walk(y)

    walk(meta.get("llm_calls"))
    walk(meta.get("verdicts"))
    return calls_by_id(run_dir / _traces_name(), ids)


def _check_run(run_dir: Path) -> None:
    from synth.errors import ConfigError

    if not any((run_dir / name).is_file() for _, name in _FILES):
        raise ConfigError(
            "not a run directory",
            file=str(run_dir),
            expected="a directory written by `synth run` (data.jsonl, rejects.jsonl)",
            found="missing" if not run_dir.exists() else "no data.jsonl or rejects.jsonl",
            fix="pass the --out of a run, e.g. synth show out/demo RECORD_ID",
        )


def _lines(path: Path) -> Any:
    from synth.files import jsonl_lines

    if not path.is_file():
        return
    for _, obj in jsonl_lines(path, what="a synth record"):
        if isinstance(obj, dict) and "id" in obj:
            yield obj


def _traces_name() -> str:
    from synth.llm.trace import TRACES

    return TRACES


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines()) or pad
