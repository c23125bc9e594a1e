"""The service's job store: one SQLite table, so an accepted job survives any crash.

A job is written (and fsynced: WAL with synchronous=FULL) before `POST /v1/jobs` answers,
so a 201 means the job will run even if the service is killed the next instant. On start
the service reads back every job still `queued` or `running` and starts it again; the
engine's resume and the LLM response cache make that restart cheap.

Reads on the hot path (status polls) never touch SQLite: the service keeps the jobs in
memory and writes through on every state change.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
ACTIVE = (QUEUED, RUNNING)
FINAL = (SUCCEEDED, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
"""


@dataclass
class Job:
    """One submitted run. `spec` is the validated request (recipe, n, seed, model,
    settings, budget); `progress` is what the run directory last said."""

    id: str
    spec: dict[str, Any]
    run_dir: str
    status: str = QUEUED
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    starts: int = 0  # processes started for it: more than 1 means it was resumed
    pid: int | None = None
    cancel_requested: bool = False
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_row(self) -> tuple[str, float, str, str]:
        return (self.id, self.created_at, self.status, json.dumps(asdict(self), default=str))

    @classmethod
    def from_body(cls, body: str) -> Job:
        return cls(**json.loads(body))

    def view(self) -> dict[str, Any]:
        """The job as the API shows it."""
        job = self
        spec, p = job.spec, job.progress
        base = f"/v1/jobs/{job.id}"
        return {
            "id": job.id,
            "status": job.status,
            "recipe": spec.get("recipe"),
            "label": spec.get("label"),
            "n": spec.get("n"),
            "seed": spec.get("seed"),
            "model": spec.get("model"),
            "settings": spec.get("settings") or {},
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "starts": job.starts,
            "pid": job.pid,
            "error": job.error,
            "progress": {
                "kept": p.get("kept", 0),
                "n": spec.get("n"),
                "fraction": p.get("fraction", 0.0),
                "generated": p.get("generated", 0),
                "rejected": p.get("rejected", 0),
                "rejected_by_reason": p.get("rejected_by_reason", {}),
                "elapsed_s": p.get("elapsed_s", 0.0),
                "stop_reason": p.get("stop_reason"),
            },
            "llm": p.get("llm", {}),
            "cost": p.get("cost", {"usd": 0.0, "input_tokens": 0, "output_tokens": 0}),
            "links": {
                "self": base,
                "records": f"{base}/records",
                "report": f"{base}/report",
                "cancel": f"{base}/cancel",
            },
        }


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class JobStore:
    """SQLite persistence. Thread-safe (one connection behind a lock) so the service can
    call it from `asyncio.to_thread` and keep fsyncs off the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an accepted job is on disk
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def put(self, job: Job) -> None:
        """Insert or replace the job's row."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, created_at, status, body) VALUES (?, ?, ?, ?)",
                job.to_row(),
            )

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_body(row[0]) if row else None

    def all(self) -> Iterator[Job]:
        """Every job, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM jobs ORDER BY created_at").fetchall()
        for (body,) in rows:
            yield Job.from_body(body)

    def close(self) -> None:
        with self._lock:
            self._db.close()
