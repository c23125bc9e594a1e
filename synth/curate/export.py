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
| `messages`   | `{"messages": [...]}` (TRL conversational; like `openai`, chat only)       |
| `prompt-completion` | `{"prompt", "completion"}` (TRL prompt-completion; system, context first) |
| `text`       | `{"text"}`: the conversation rendered by a model's chat template          |

Every line of a format has the same keys and types, which is what
`datasets.load_dataset("json", data_files=...)` (pyarrow underneath) needs to infer one
schema. Fields are found by their usual names (`instruction`/`prompt`/`question`,
`response`/`output`/`answer`, ...); `fields` maps them explicitly. A long-context QA
record's `context` goes before the question (or into Alpaca's `input`).

`export_parquet` writes any of these (or the raw record payloads, `records`) as Parquet
shards with one explicit schema; see synth/curate/parquet.py for the schema and sizes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synth.errors import ConfigError
from synth.files import atomic_output, jsonl_lines

if TYPE_CHECKING:
    from synth.curate.chat_template import ChatTemplate
    from synth.curate.parquet import Sizes

FORMATS = (
    "openai",
    "sharegpt",
    "alpaca",
    "preference",
    "reward",
    "messages",
    "prompt-completion",
    "text",
)
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
    for n, rid, data, _meta in records(path):
        yield n, rid, data


def records(path: str | Path) -> Iterator[tuple[int, str | None, dict[str, Any], dict[str, Any]]]:
    """`rows` with each record's lineage (`meta`; empty for plain JSONL objects)."""
    for n, obj in jsonl_lines(path, what="one JSON object per line"):
        if isinstance(obj, dict) and isinstance(obj.get("data"), dict) and "id" in obj:
            yield n, str(obj["id"]), obj["data"], dict(obj.get("meta") or {})
        elif isinstance(obj, dict):
            yield n, None if obj.get("id") is None else str(obj["id"]), obj, {}
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
    template: ChatTemplate | None = None,
) -> dict[str, Any]:
    """One record's payload in `fmt` (`text` needs the model's chat `template`)."""
    f = _Fields(data, fields or {}, where)
    sys_text = system if system is not None else f.text("system", required=False)
    if fmt in ("messages", "text"):
        messages = _system(sys_text) + [
            {"role": "user", "content": _prompt(f)},
            {"role": "assistant", "content": f.text("response")},
        ]
        if fmt == "messages":
            return {"messages": messages}
        if template is None:
            raise ConfigError(
                "the text format needs a chat template",
                path="--chat-template",
                expected="a model folder or its tokenizer_config.json",
                fix="pass --chat-template MODEL_DIR (the model you will train)",
            )
        return {"text": template.render(messages)}
    if fmt == "prompt-completion":
        prompt = f"{sys_text}\n\n{_prompt(f)}" if sys_text else _prompt(f)
        return {"prompt": prompt, "completion": f.text("response")}
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
    template: ChatTemplate | None = None,
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
                data,
                fmt,
                fields=fields,
                system=system,
                record_id=rid,
                where=f"{src}:{line}",
                template=template,
            )
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def parquet_variant(fmt: str, row: Mapping[str, Any]) -> str:
    """The schema name of a converted row: `openai` rows are chat or DPO-shaped."""
    return "openai-preference" if fmt == "openai" and "input" in row else fmt


def export_parquet(
    src: str | Path,
    fmt: str,
    out: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    system: str | None = None,
    template: ChatTemplate | None = None,
    meta: bool = True,
    sizes: Sizes | None = None,
    prefix: str = "data",
) -> tuple[int, list[Path]]:
    """`src` in `fmt` (or `records`: the payloads as they are) as Parquet shards in the
    folder `out`, which is replaced whole when the export completes. Returns (rows, files)."""
    from synth.curate.parquet import (
        RecordSchema,
        ShardWriter,
        format_schema,
        meta_json,
        staged_dir,
    )

    out = Path(out)
    if fmt != "records" and fmt not in FORMATS:
        convert({}, fmt)
    schema_of = RecordSchema()
    if fmt == "records":  # a first pass: the schema comes from every row, not the first
        for _n, _rid, data, _m in records(src):
            schema_of.add(data)
        schema_of.schema(meta=meta)  # settles which fields are JSON before any row is built
    with staged_dir(out) as tmp:
        writer: ShardWriter | None = None
        variant = None
        for line, rid, data, lineage in records(src):
            where = f"{src}:{line}"
            if fmt == "records":
                row = schema_of.row(data)
                kind = fmt
            else:
                row = convert(
                    data,
                    fmt,
                    fields=fields,
                    system=system,
                    record_id=rid,
                    where=where,
                    template=template,
                )
                kind = parquet_variant(fmt, row)
            if variant is None:
                variant = kind
                schema = (
                    schema_of.schema(meta=meta)
                    if fmt == "records"
                    else format_schema(kind, meta=meta)
                )
                writer = ShardWriter(tmp, prefix, schema, sizes)
            elif kind != variant:
                raise ConfigError(
                    "rows of two shapes in one export",
                    file=where,
                    expected=f"{variant} rows like the first one (one Parquet schema)",
                    found=kind,
                    fix="export chat records and preference pairs separately",
                )
            if meta:
                row["meta"] = meta_json(rid, lineage)
            assert writer is not None
            writer.write(row)
        if writer is None:  # no rows: an empty file that still has the schema
            schema = (
                schema_of.schema(meta=meta)
                if fmt == "records"
                else format_schema("openai" if fmt == "openai" else fmt, meta=meta)
            )
            writer = ShardWriter(tmp, prefix, schema, sizes)
        files = [out / p.name for p in writer.close()]
    return writer.rows, files
