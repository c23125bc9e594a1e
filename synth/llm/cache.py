"""The persistent response cache: a crashed or re-run job never pays twice for a call.

One SQLite file (WAL) under the state dir, shared by every run and recipe. The key is a
hash of exactly what determines the answer: model, messages, sampling parameters, sample
index and the requested output schema; never the API key or endpoint, so no secret is
stored and a key rotation keeps the cache warm. Only answers are stored, not prompts:
the text, token counts, cost, and the token logprobs when the call asked for them (the
request for them is a sampling parameter, so it is part of the key, and a cached answer
without logprobs is never served to a call that wants them). A cache file from an older
synth gains the newer columns when it opens.

Reads and writes happen inline, on the event loop, on purpose: a primary-key lookup takes
microseconds, and an insert with WAL and `synchronous=NORMAL` commits in well under a
tenth of a millisecond without an fsync. Committing an answer *before* the caller sees it
means nothing downstream (a record written to `data.jsonl`) can exist without its answer
being in the cache, so after a SIGKILL a re-run asks exactly for the answers never
received. Several processes may share the file: WAL lets readers and one writer work at
once, and a writer waits (`busy_timeout`) rather than failing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILENAME = "llm-cache.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    finish_reason TEXT,
    created REAL NOT NULL,
    logprobs TEXT
) WITHOUT ROWID
"""
# Columns added after the first release, each added to an older cache file when it opens.
_ADDED = {"logprobs": "TEXT"}
_COLUMNS = (
    "key, model, text, input_tokens, output_tokens, cost_usd, finish_reason, created, logprobs"
)


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored answer. `cost_usd` is what it cost when it was first paid for."""

    model: str
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    finish_reason: str | None = None
    # Per generated token, the token then its top alternatives -> logprob (`logprobs=True`).
    logprobs: tuple[dict[str, float], ...] | None = None


def request_key(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any], n_index: int = 0
) -> str:
    """sha256 of the canonical JSON of everything that determines an answer. A requested
    schema is part of it: in `params` (`response_format`) or in the messages (the
    instruction that carries it), depending on how it is sent."""
    blob = json.dumps(
        {"m": model, "msg": messages, "p": params, "n": n_index},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _connect(path: Path) -> sqlite3.Connection:
    """Open (and on first use create) the cache file. Processes of one run open the same
    new file at once, and switching it to WAL can fail with "database is locked" without
    waiting for SQLite's busy timeout, so opening is retried for as long as that timeout."""
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=30000")
    deadline, pause = time.monotonic() + 30.0, 0.01
    while True:
        try:
            _prepare(conn)
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
        time.sleep(pause)  # noqa: TID251  (only while another process creates the file)
        pause = min(pause * 2, 0.5)


def _prepare(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: only the file's creator
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a killed process
    conn.execute(_SCHEMA)
    _migrate(conn)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a cache file written by an older synth lacks. Rows it already holds
    keep NULL there, which reads back as "not recorded" (e.g. no logprobs)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(responses)")}
    for name, kind in _ADDED.items():
        if name not in have:
            try:
                db.execute(f"ALTER TABLE responses ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


class ResponseCache:
    """Get and put answers by request key; see the module docstring for the guarantees."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = _connect(self.path)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"the response cache {self.path} is closed")
        return self._db

    def get(self, key: str) -> Entry | None:
        row = self.db.execute(
            "SELECT model, text, input_tokens, output_tokens, cost_usd, finish_reason, logprobs "
            "FROM responses WHERE key = ?",
            (key,),
        ).fetchone()
        if not row:
            return None
        model, text, input_tokens, output_tokens, cost_usd, finish_reason, logprobs = row
        return Entry(
            model,
            text,
            input_tokens,
            output_tokens,
            cost_usd,
            finish_reason,
            None if logprobs is None else tuple(json.loads(logprobs)),
        )

    def put(self, key: str, entry: Entry) -> None:
        """Store an answer, committed when this returns. The first answer stored for a key
        wins, so concurrent processes asking the same question agree on one answer."""
        e = entry
        self.db.execute(
            f"INSERT OR IGNORE INTO responses ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                e.model,
                e.text,
                e.input_tokens,
                e.output_tokens,
                e.cost_usd,
                e.finish_reason,
                time.time(),
                None if e.logprobs is None else json.dumps(list(e.logprobs)),
            ),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- maintenance (`synth cache stats|clear`)

    def stats(self) -> dict[str, Any]:
        rows = self.db.execute(
            "SELECT model, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), "
            "MIN(created), MAX(created) FROM responses GROUP BY model ORDER BY model"
        ).fetchall()
        by_model = {
            m: {"entries": n, "input_tokens": i or 0, "output_tokens": o or 0, "cost_usd": c or 0.0}
            for m, n, i, o, c, _, _ in rows
        }
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return {
            "path": str(self.path),
            "entries": sum(v["entries"] for v in by_model.values()),
            "bytes": size,
            "cost_usd_saved_per_rerun": round(sum(v["cost_usd"] for v in by_model.values()), 6),
            "oldest": min((r[5] for r in rows), default=None),
            "newest": max((r[6] for r in rows), default=None),
            "by_model": by_model,
        }

    def clear(self, *, model: str | None = None) -> int:
        """Delete every entry (or one model's); returns how many were removed."""
        if model is None:
            cur = self.db.execute("DELETE FROM responses")
        else:
            cur = self.db.execute("DELETE FROM responses WHERE model = ?", (model,))
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        return cur.rowcount
