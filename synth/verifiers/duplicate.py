"""`exact_duplicate`: the first record with given content wins; later copies are rejected.

Content is the normalized text of chosen fields (or of the whole data): Unicode NFKC,
case-folded, whitespace collapsed, so "Refund  please" and "refund please" collide. Each
kept key is an 8-byte blake2b digest in a flat open-addressing table, about 16 bytes per
record against ~70 for a Python set of ints: a million records cost ~16 MB, not ~70.
A resumed run first reloads the digests of the records it already wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import unicodedata
from array import array
from pathlib import Path
from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.records import Record
from synth.registry import verifier
from synth.verifiers.rules import MISSING, lookup

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "fields": {
            "type": "array",
            "items": {"type": "string"},
            "minItems": 1,
            "description": "Compare only these fields (default: the whole data).",
        },
        "normalize": {"type": "boolean", "description": "Default true."},
    },
}
_SPACE = re.compile(r"\s+")


class DigestSet:
    """A set of non-zero 64-bit integers in one `array('Q')`, linear probing, load <= 1/2."""

    def __init__(self, capacity: int = 1 << 12) -> None:
        self._table = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, digest: int) -> bool:
        """Insert; False when it was already there."""
        digest = digest or 1  # 0 marks an empty slot
        if 2 * (self._n + 1) > len(self._table):
            self._grow()
        table, mask = self._table, self._mask
        i = digest & mask
        while True:
            slot = table[i]
            if slot == 0:
                table[i] = digest
                self._n += 1
                return True
            if slot == digest:
                return False
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        self.__init__(len(old) * 2)  # type: ignore[misc]
        for d in old:
            if d:
                self.add(d)


def key_of(record: Record, fields: list[str] | None, normalize: bool) -> int:
    if fields is None:
        values: Any = record.data
    else:
        values = [None if (v := lookup(record, f)) is MISSING else v for f in fields]
    if normalize:
        values = _normalized(values)
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _normalized(value: Any) -> Any:
    if isinstance(value, str):
        return _SPACE.sub(" ", unicodedata.normalize("NFKC", value).casefold()).strip()
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


@verifier("exact_duplicate", schema=SCHEMA)
def exact_duplicate(*, fields: list[str] | None = None, normalize: bool = True) -> Verifier:
    """Reject records whose (normalized) content equals an earlier record's."""
    seen = DigestSet()
    primed: list[asyncio.Task[None]] = []

    def prime(data_file: Path) -> None:
        with open(data_file, encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n") and line.strip():
                    seen.add(key_of(Record.from_json(line), fields, normalize))

    async def check(record: Record, ctx: Context) -> Verdict:
        if not primed:
            data_file = ctx.run_dir / "data.jsonl" if ctx.run_dir else None
            job = (
                asyncio.to_thread(prime, data_file)
                if data_file and data_file.is_file()
                else asyncio.sleep(0)
            )
            primed.append(asyncio.ensure_future(job))
        await primed[0]
        if seen.add(key_of(record, fields, normalize)):
            return Verdict(True, 1.0)
        what = ", ".join(fields) if fields else "data"
        return Verdict(False, 0.0, "duplicate", f"same {what} as an earlier record")

    return check
