"""Exports to the JSONL formats trainers read.

| format       | one line                                                                  |
|--------------|---------------------------------------------------------------------------|
| `openai`     | `{"messages": [{"role": "system"?}, {"role": "user"}, {"role": "assistant"}]}` |
|              | preference records: OpenAI DPO `{"input": {"messages"}, "preferred_output",` |
|              | `"non_preferred_output"}`                                                 |
| `sharegpt`   | `{"id", "conversations": [{"from": "human"}, {"from": "gpt"}], "system"?}` |
| `alpaca`     | `{"instruction", "input", "output", "system"?}`                           |
| `preference` | `{"prompt", "chosen", "rejected"}` (TRL standard preference)              |
| `reward`     | `{"prompt", "response", "score"}`                                         |

Every line of a format has the same keys and types, which is what
`datasets.load_dataset("json", data_files=...)` (pyarrow underneath) needs to infer one
schema. Fields are found by their usual names (`instruction`/`prompt`/`question`,
`response`/`output`/`answer`, ...); `fields` maps them explicitly. A long-context QA
record's `context` goes before the question (or into Alpaca's `input`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from synth.errors import ConfigError
from synth.files import atomic_output, jsonl_lines

FORMATS = ("openai", "sharegpt", "alpaca", "preference", "reward")
ALIASES: dict[str, tuple[str, ...]] = {
    "prompt": ("instruction", "prompt", "question", "query", "input"),
    "response": ("response", "output", "answer", "completion"),
    "context": ("context",),
    "system": ("system",),
    "chosen": ("chosen",),
    "rejected": ("rejected",),
    "score": ("score", "reward", "label"),
}


def rows(path: str | Path) -> Iterator[tuple[int, str | None, dict[str, Any]]]:
    """(line number, id, payload) of a synth data file (`{"id", "data", "meta"}` lines) or
    of plain JSONL objects. A trailing partial line (a killed writer) is skipped."""
    for n, obj in jsonl_lines(path, what="one JSON object per line"):
        if isinstance(obj, dict) and isinstance(obj.get("data"), dict) and "id" in obj:
            yield n, str(obj["id"]), obj["data"]
        elif isinstance(obj, dict):
            yield n, None if obj.get("id") is None else str(obj["id"]), obj
        else:
            raise ConfigError(
                "not a JSON object",
                file=str(path),
                path=f"line {n}",
                expected="an object per line",
                found=obj,
            )


class _Fields:
    """Looks fields up by explicit mapping, then by alias; errors name the line."""

    def __init__(self, data: dict[str, Any], mapping: Mapping[str, str], where: str) -> None:
        self.data, self.mapping, self.where = data, mapping, where

    def get(self, role: str, *, required: bool = True) -> Any:
        names = (self.mapping[role],) if role in self.mapping else ALIASES[role]
        for name in names:
            if name in self.data and self.data[name] not in (None, ""):
                return self.data[name]
        if not required:
            return None
        raise ConfigError(
            f"record has no {role} field",
            file=self.where,
            expected=f"one of the fields {', '.join(names)}",
            found=sorted(self.data),
            fix=f"map it explicitly: --map {role}=<field>",
        )

    def text(self, role: str, *, required: bool = True) -> str:
        value = self.get(role, required=required)
        return "" if value is None else value if isinstance(value, str) else json.dumps(value)


def convert(
    data: dict[str, Any],
    fmt: str,
    *,
    fields: Mapping[str, str] | None = None,
    system: str | None = None,
    record_id: str | None = None,
    where: str = "<record>",
) -> dict[str, Any]:
    """One record's payload in `fmt`."""
    f = _Fields(data, fields or {}, where)
    sys_text = system if system is not None else f.text("system", required=False)
    if fmt == "preference":
        return {"prompt": _prompt(f), "chosen": f.text("chosen"), "rejected": f.text("rejected")}
    if fmt == "reward":
        score = f.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ConfigError(
                "score is not a number",
                file=where,
                expected="a number",
                found=score,
                fix="export reward data built by the `reward` step",
            )
        return {"prompt": _prompt(f), "response": f.text("response"), "score": float(score)}
    if fmt == "openai":
        if "chosen" in data and "rejected" in data and "response" not in (fields or {}):
            messages = _system(sys_text) + [{"role": "user", "content": _prompt(f)}]
            return {
                "input": {"messages": messages},
                "preferred_output": [{"role": "assistant", "content": f.text("chosen")}],
                "non_preferred_output": [{"role": "assistant", "content": f.text("rejected")}],
            }
        return {
            "messages": _system(sys_text)
            + [
                {"role": "user", "content": _prompt(f)},
                {"role": "assistant", "content": f.text("response")},
            ]
        }
    if fmt == "sharegpt":
        out: dict[str, Any] = {
            "id": record_id or "",
            "conversations": [
                {"from": "human", "value": _prompt(f)},
                {"from": "gpt", "value": f.text("response")},
            ],
        }
        if sys_text:
            out["system"] = sys_text
        return out
    if fmt == "alpaca":
        row = {
            "instruction": f.text("prompt"),
            "input": f.text("context", required=False),
            "output": f.text("response"),
        }
        if sys_text:
            row["system"] = sys_text
        return row
    raise ConfigError(
        f"unknown export format {fmt!r}",
        path="--format",
        expected=f"one of {', '.join(FORMATS)}",
        found=fmt,
    )


def _prompt(f: _Fields) -> str:
    question, context = f.text("prompt"), f.text("context", required=False)
    return f"{context}\n\n{question}" if context else question


def _system(text: str | None) -> list[dict[str, str]]:
    return [{"role": "system", "content": text}] if text else []


def export(
    src: str | Path,
    fmt: str,
    out: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    system: str | None = None,
) -> int:
    """Convert every record of `src` into `out` atomically (temp file, fsync, rename):
    an interrupted export leaves the previous file, never half of a new one."""
    out = Path(out)
    if fmt not in FORMATS:
        convert({}, fmt)  # raises the error listing the formats
    n = 0
    with atomic_output(out) as fh:
        for line, rid, data in rows(src):
            row = convert(
                data, fmt, fields=fields, system=system, record_id=rid, where=f"{src}:{line}"
            )
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
