"""Records, their stable ids, and the JSONL form they travel in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """One example. `data` ends up in the dataset; `meta` carries lineage.

    Frozen so a step cannot change a record another step still holds: derive with
    `evolve`, and grow `meta` rather than this class."""

    id: str
    data: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def evolve(self, *, data: dict[str, Any] | None = None, **meta: Any) -> Record:
        """A copy with new data and/or extra lineage keys; the id is kept."""
        return Record(self.id, self.data if data is None else data, {**self.meta, **meta})

    def to_json(self) -> str:
        return json.dumps(
            {"id": self.id, "data": self.data, "meta": self.meta},
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
            default=_json_default,
        )

    @classmethod
    def from_json(cls, line: str) -> Record:
        obj = json.loads(line)
        return cls(obj["id"], obj["data"], obj.get("meta", {}))


def record_id(recipe_hash: str, seed: int, index: int, parents: Sequence[str] = ()) -> str:
    """Stable id of (recipe hash, seed, index, parent ids): the same run gives the same ids,
    which is what makes resume and dedup-against-last-night work."""
    key = f"{recipe_hash}\x1f{seed}\x1f{index}\x1f{','.join(parents)}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def child_id(parent: Record, tag: str, k: int = 0) -> str:
    """Id of the k-th record a step derives from `parent` (paraphrase k, QA pair k, ...)."""
    key = f"{parent.id}\x1f{tag}\x1f{k}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def content_hash(obj: Any) -> str:
    """sha256 of an object's canonical JSON: recipe hashes, config hashes, dedup keys."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def read_jsonl(path: str | Path) -> Iterator[Record]:
    """Records from a JSONL file written by synth. A trailing partial line (a run killed
    mid-write) is ignored; resume truncates it."""
    from synth.files import jsonl_lines  # records is the kernel's bottom: no cycle

    for _, obj in jsonl_lines(path, what="a synth record"):
        yield Record(obj["id"], obj["data"], obj.get("meta", {}))


def write_jsonl(path: str | Path, records: Iterable[Record]) -> int:
    """Write records atomically (temp file + rename); returns how many were written."""
    from synth.files import atomic_output  # records is the kernel's bottom: no cycle

    n = 0
    with atomic_output(path) as fh:
        for r in records:
            fh.write(r.to_json() + "\n")
            n += 1
    return n


def _json_default(obj: Any) -> Any:
    # Faker returns dates, Decimals and the like; the dataset stores their plain forms.
    import datetime
    import decimal

    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"cannot store {type(obj).__name__} in JSON: {obj!r}")
