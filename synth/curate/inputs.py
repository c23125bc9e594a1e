"""Synthetic batches on disk: a run directory (`data.jsonl` + `rejects.jsonl` +
`manifest.json`) or a plain JSONL file, read as Records for the mixer and the monitor."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.curate.remote import is_remote, localize
from synth.errors import ConfigError
from synth.files import jsonl_lines
from synth.records import Record, content_hash


@dataclass(frozen=True)
class Batch:
    """One synthetic input. Records of a run's `data.jsonl` passed its verifier chain;
    in a bare JSONL file a record with `meta.reject_reason` counts as rejected."""

    path: Path
    data_file: Path
    rejects_file: Path | None
    is_run: bool

    @property
    def name(self) -> str:
        return self.path.name if self.is_run else self.path.stem

    def records(self) -> Iterator[Record]:
        for rec in read_records(self.data_file):
            if self.is_run or not rec.meta.get("reject_reason"):
                yield rec

    def rejected(self) -> Iterator[Record]:
        if self.rejects_file is not None and self.rejects_file.is_file():
            yield from read_records(self.rejects_file)
        if not self.is_run:
            for rec in read_records(self.data_file):
                if rec.meta.get("reject_reason"):
                    yield rec

    def manifest(self) -> dict[str, Any]:
        m = self.path / "manifest.json"
        if self.is_run and m.is_file():
            try:
                loaded = json.loads(m.read_text(encoding="utf-8"))
                return loaded if isinstance(loaded, dict) else {}
            except json.JSONDecodeError:
                return {}
        return {}

    def recipe_name(self) -> str | None:
        recipe = self.manifest().get("recipe")
        if isinstance(recipe, dict):
            name = recipe.get("name")
            return str(name) if name else None
        return str(recipe) if isinstance(recipe, str) else None


def open_batch(path: str | Path) -> Batch:
    """A run folder or a JSONL file (local, or an `hf://`/`s3://` URL fetched first)."""
    path = localize(str(path)) if is_remote(path) else Path(path)
    if path.is_dir():
        data = path / "data.jsonl"
        if not data.is_file():
            raise ConfigError(
                "not a synth run directory",
                file=str(path),
                expected="a folder with data.jsonl (written by `synth run`) or a JSONL file",
                found=", ".join(sorted(p.name for p in path.iterdir())[:8]) or "an empty folder",
                fix="pass the run's output folder or its data.jsonl",
            )
        return Batch(path, data, path / "rejects.jsonl", True)
    if path.is_file():
        return Batch(path, path, None, False)
    raise ConfigError(
        "input not found",
        file=str(path),
        expected="a synth run directory or a JSONL file",
        fix="check the path",
    )


def read_records(file: Path) -> Iterator[Record]:
    """Records from JSONL: synth records (`id`, `data`, `meta`) or plain objects (the
    object is the payload and its content hash the id). A truncated last line (a run
    killed mid-write) is skipped, as `synth run` itself does on resume."""
    for n, obj in jsonl_lines(file, what="one JSON object per line"):
        if not isinstance(obj, dict):
            raise ConfigError(
                "a line is not a JSON object", file=str(file), path=f"line {n}", found=obj
            )
        if isinstance(obj.get("data"), dict) and isinstance(obj.get("id"), str):
            yield Record(obj["id"], obj["data"], dict(obj.get("meta") or {}))
        else:
            rid = hashlib.blake2b(content_hash(obj).encode(), digest_size=12).hexdigest()
            yield Record(rid, obj, {})


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names + contents, sorted)."""
    path = localize(str(path)) if is_remote(path) else Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
