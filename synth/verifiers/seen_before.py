"""`seen_before`: reject a record that an earlier night of a batch already produced.

What makes a nightly batch incremental. Every night's kept records leave a digest file
(`<history>/<YYYY-MM-DD>.npy`: sorted 64-bit digests of each record's id and of its
normalized content, the same normalization as `exact_duplicate`), 16 bytes a record. The
verifier loads the files of the nights before `before` and rejects a record whose id or
content is among them, with reason `seen_before`. It is cheap, so `synth batch` puts it
first in the chain: a repeat costs no judge call.

A night's digests come only from earlier nights, so re-running a night sees the same
history and the engine's resume stays valid.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.records import Record, read_jsonl
from synth.registry import verifier

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["history"],
    "properties": {
        "history": {
            "type": "string",
            "description": "folder of <YYYY-MM-DD>.npy digest files (relative: to the run dir)",
        },
        "before": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}$",
            "description": "use only nights before this date (default: all)",
        },
    },
}


def id_digest(record_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(b"id\x1f" + record_id.encode(), digest_size=8).digest())


def digests_of(record: Record) -> tuple[int, int]:
    """(id digest, normalized-content digest) of a record."""
    from synth.verifiers.duplicate import key_of

    return id_digest(record.id), key_of(record, None, True)


def write_digests(data_file: Path, out: Path) -> int:
    """Digest every kept record of a run into `out` (.npy, sorted, unique); returns the
    number of records."""
    import numpy as np

    values: list[int] = []
    n = 0
    if data_file.is_file():
        for record in read_jsonl(data_file):
            values.extend(digests_of(record))
            n += 1
    arr = np.unique(np.array(values, dtype=np.uint64))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npy")
    np.save(tmp, arr)
    tmp.replace(out)
    return n


def load_history(history: Path, before: str | None) -> Any:
    """All digests of the nights before `before`, one sorted numpy array."""
    import numpy as np

    parts = [
        np.load(f)
        for f in sorted(history.glob("*.npy"))
        if not f.name.endswith(".tmp.npy") and (before is None or f.stem < before)
    ]
    if not parts:
        return np.zeros(0, dtype=np.uint64)
    return np.unique(np.concatenate(parts))


@verifier("seen_before", schema=SCHEMA)
def seen_before(*, history: str, before: str | None = None) -> Verifier:
    """Reject records (by id or normalized content) produced on earlier nights."""
    import numpy as np

    loaded: list[asyncio.Task[Any]] = []

    def member(known: Any, d: int) -> bool:
        if not known.size:
            return False
        i = int(np.searchsorted(known, np.uint64(d)))
        return i < known.size and int(known[i]) == d

    async def check(record: Record, ctx: Context) -> Verdict:
        if not loaded:
            # A relative `history` is taken from the run directory, so the recipe (and its
            # hash, which resume checks) does not depend on where the batch was started.
            folder = Path(history)
            if not folder.is_absolute() and ctx.run_dir is not None:
                folder = ctx.run_dir / folder
            loaded.append(asyncio.ensure_future(asyncio.to_thread(load_history, folder, before)))
        known = await loaded[0]
        by_id, by_content = digests_of(record)
        if member(known, by_id):
            return Verdict(False, 0.0, "seen_before", "same id as a record of an earlier night")
        if member(known, by_content):
            return Verdict(
                False, 0.0, "seen_before", "same content as a record of an earlier night"
            )
        return Verdict(True, 1.0)

    return check
