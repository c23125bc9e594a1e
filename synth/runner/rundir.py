"""The run directory: `data.jsonl`, `rejects.jsonl`, `manifest.json`, and resume.

Crash safety comes from three rules:
1. Records are appended in batches of whole lines, one `os.write` per file per batch on
   an `O_APPEND` descriptor, so a SIGKILL leaves at most an unfinished last batch.
2. After both files got their batch, the manifest is replaced atomically (temp + rename)
   with a checkpoint: the byte size of each file, the counters, and the root index of the
   last record written together with the ids written for that index.
3. On start, a directory holding the same run (recipe hash, seed, n, shard) is resumed:
   each file is cut back to its checkpointed size (dropping any partial line and any batch
   the checkpoint does not cover), counters are restored, and the source restarts at the
   checkpointed index, skipping the ids already written for it. Work lost to a kill is at
   most one batch; nothing is written twice.
4. A write that fails (a full disk, a vanished mount) does not wait for the next start:
   both files are cut back to the last checkpoint at once and the manifest says
   `failed` and why, so the directory never shows a torn line or a run that is not
   running. The same command resumes it once the cause is fixed.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import SinkError
from synth.files import write_json_atomic
from synth.llm.trace import TRACES
from synth.records import read_jsonl
from synth.runner.engine import Outcome, Tally
from synth.runner.fieldstats import profile
from synth.text.fields import model_fields

DATA, REJECTS, MANIFEST, PARTS, LOCK = (
    "data.jsonl",
    "rejects.jsonl",
    "manifest.json",
    "parts",
    ".synth.lock",
)
IDENTITY_KEYS = ("recipe_hash", "seed", "n", "shard", "workers")
OUTPUTS = (DATA, REJECTS, TRACES)  # described in the manifest when present


@dataclass(frozen=True, slots=True)
class Resume:
    """Where an existing run directory left off (all zeros for a fresh one)."""

    tally: Tally
    start_index: int | None  # None: a fresh run (the source starts at its own start)
    skip: frozenset[str]
    elapsed: float
    manifest: dict[str, Any]
    resumed: bool
    finished: bool


class RunDir:
    """Owns one output directory for the length of a run (an exclusive lock says so)."""

    def __init__(
        self,
        path: str | Path,
        identity: dict[str, Any],
        *,
        force: bool = False,
        batch_size: int = 1024,
        interval: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self.identity = identity
        self.force = force
        self.batch_size, self.interval = batch_size, interval
        self.manifest: dict[str, Any] = {}
        self._buf: dict[str, list[str]] = {DATA: [], REJECTS: []}
        self._fds: dict[str, int] = {}
        self._size: dict[str, int] = {DATA: 0, REJECTS: 0}
        self._group: tuple[int | None, list[str]] = (None, [])
        self._pending = 0
        self._last_flush = time.monotonic()
        self._lock_fd: int | None = None
        # What the manifest on disk vouches for: restored when a write fails.
        self._durable: tuple[dict[str, int], tuple[int | None, list[str]], dict[str, Any]] = (
            {DATA: 0, REJECTS: 0},
            (None, []),
            {},
        )
        self.failed: str | None = None  # why a write failed; nothing is written after it
        # Set by the runner: what every checkpoint also records (LLM usage, step stats),
        # and what to do once a manifest is durable (empty the usage ledger).
        self.extras: Callable[[], dict[str, Any]] | None = None
        self.after_checkpoint: Callable[[], None] | None = None

    # -- opening -------------------------------------------------------------------------

    def open(self, base_manifest: dict[str, Any]) -> Resume:
        """Create or resume the directory. `base_manifest` holds what describes this run
        (recipe, seed, model, ...); counters and checkpoints are added by the sink."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise SinkError(f"cannot use {self.path} as a run directory: {exc}") from exc
        try:
            return self._open(base_manifest)
        except OSError as exc:
            self.close()
            raise SinkError(f"cannot write the run directory {self.path}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _open(self, base_manifest: dict[str, Any]) -> Resume:
        previous = read_manifest(self.path)
        if previous is None and _has_output(self.path) and not self.force:
            raise SinkError(
                f"{self.path} holds data.jsonl/rejects.jsonl but no manifest.json; "
                "it was not written by synth or was damaged. Use another --out, or --force "
                "to overwrite it"
            )
        if previous is not None and not self.force:
            self._check_identity(previous)
        if self.force or previous is None:
            self._wipe()
            previous = None
        self.manifest = {**(previous or {}), **base_manifest, **self.identity}
        if previous is None:
            return self._fresh()
        return self._resume(previous)

    def _fresh(self) -> Resume:
        now = _now()
        self.manifest.update(
            status="running",
            started_at=now,
            stop_reason=None,
            counts=Tally().to_dict(),
            durations={"total_s": 0.0, "processes": 1},
            checkpoint={"data_bytes": 0, "rejects_bytes": 0, "index": None, "ids": []},
        )
        self._open_files()
        self._write_manifest()
        return Resume(Tally(), None, frozenset(), 0.0, dict(self.manifest), False, False)

    def _resume(self, previous: dict[str, Any]) -> Resume:
        cp = previous.get("checkpoint") or {}
        for name, key in ((DATA, "data_bytes"), (REJECTS, "rejects_bytes")):
            file, size = self.path / name, int(cp.get(key, 0))
            actual = file.stat().st_size if file.exists() else 0
            if actual < size:
                raise SinkError(
                    f"{file} is shorter ({actual} bytes) than its checkpoint ({size} bytes): "
                    "it was edited or truncated outside synth. Use --force to start over"
                )
            if actual > size:  # an unfinished batch or partial line: cut back to the checkpoint
                with open(file, "r+b") as fh:
                    fh.truncate(size)
        finished = previous.get("status") == "finished"
        self._open_files()
        tally = Tally.from_dict(previous.get("counts", {}))
        tally.stop_reason = previous.get("stop_reason") if finished else None
        durations = previous.get("durations", {})
        elapsed = float(durations.get("total_s", 0.0))
        index, ids = cp.get("index"), list(cp.get("ids", []))
        self._group = (index, ids)
        self._durable = (dict(self._size), (index, list(ids)), dict(previous))
        if not finished:
            self.manifest["durations"] = {
                **durations,
                "processes": int(durations.get("processes", 1)) + 1,
            }
        return Resume(tally, index, frozenset(ids), elapsed, previous, True, finished)

    def reopen(self) -> None:
        """Continue a finished run whose budget was raised: it is running again."""
        self.manifest["status"] = "running"
        durations = self.manifest.get("durations", {})
        self.manifest["durations"] = {
            **durations,
            "processes": int(durations.get("processes", 1)) + 1,
        }

    def _check_identity(self, previous: dict[str, Any]) -> None:
        diffs = [
            f"{k} {previous.get(k)!r} (this run: {self.identity.get(k)!r})"
            for k in IDENTITY_KEYS
            if previous.get(k) != self.identity.get(k)
        ]
        if diffs:
            raise SinkError(
                f"{self.path} holds a different run of recipe "
                f"{previous.get('recipe', {}).get('name')!r}: it has "
                + ", ".join(diffs)
                + ". Use another --out, the same arguments to resume it, or --force to "
                "overwrite it"
            )

    def _wipe(self) -> None:
        for name in (DATA, REJECTS, TRACES, MANIFEST):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        shutil.rmtree(self.path / PARTS, ignore_errors=True)

    def _open_files(self) -> None:
        for name in (DATA, REJECTS):
            fd = os.open(self.path / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._fds[name] = fd
            self._size[name] = os.fstat(fd).st_size

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SinkError(
                f"another synth process is writing to {self.path}; wait for it to finish "
                "or use another --out"
            ) from None
        self._lock_fd = fd

    # -- writing -------------------------------------------------------------------------

    def add(self, outcome: Outcome, tally: Tally, *, elapsed: float) -> bool:
        """Buffer one outcome; write a batch and checkpoint when the batch is full or old.
        Returns True when it checkpointed (a good moment to report progress)."""
        record = outcome.record
        index = record.meta.get("index")
        if not isinstance(index, int):
            raise SinkError(
                f"record {record.id} has no integer meta['index']; the recipe's source step "
                "must set it (it is how a run resumes)"
            )
        self._buf[DATA if outcome.ok else REJECTS].append(record.to_json() + "\n")
        group_index, ids = self._group
        if index != group_index:
            self._group = (index, [record.id])
        else:
            ids.append(record.id)
        self._pending += 1
        if self._pending >= self.batch_size or time.monotonic() - self._last_flush > self.interval:
            self.checkpoint(tally, elapsed=elapsed)
            return True
        return False

    def checkpoint(self, tally: Tally, *, elapsed: float, **updates: Any) -> None:
        """Write buffered lines, then record in the manifest that they are durable."""
        if self.failed is not None:
            return  # the directory stays as the last checkpoint left it
        try:
            self._checkpoint(tally, elapsed, updates)
        except OSError as exc:  # a full disk, a vanished mount: resumable once fixed
            why = f"cannot write to {self.path}: {exc}"
            self._roll_back(why)
            raise SinkError(
                f"{why}. The run directory is as its last checkpoint left it (manifest "
                "status: failed); free space or fix the mount, then run the same command "
                "again to resume"
            ) from exc

    def _roll_back(self, why: str) -> None:
        """Back to the last durable checkpoint: cut both files to its sizes, drop what
        was buffered, and record the failure (best effort: if even the manifest cannot
        be written, the one on disk still matches the files)."""
        sizes, group, manifest = self._durable
        self.failed = why
        for name in (DATA, REJECTS):
            self._buf[name].clear()
            fd = self._fds.get(name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, sizes[name])
            self._size[name] = sizes[name]
        self._pending, self._group = 0, (group[0], list(group[1]))
        self.manifest = {**manifest, "status": "failed", "error": why, "failed_at": _now()}
        with contextlib.suppress(OSError):
            write_manifest(self.path, self.manifest)

    def _checkpoint(self, tally: Tally, elapsed: float, updates: dict[str, Any]) -> None:
        for name in (DATA, REJECTS):
            lines = self._buf[name]
            if lines:
                payload = "".join(lines).encode("utf-8")
                _write_all(self._fds[name], payload)
                self._size[name] += len(payload)
                lines.clear()
        self._pending = 0
        self._last_flush = time.monotonic()
        index, ids = self._group
        if self.extras is not None:
            updates = {**self.extras(), **updates}
        self.manifest.update(
            counts=tally.to_dict(),
            checkpoint={
                "data_bytes": self._size[DATA],
                "rejects_bytes": self._size[REJECTS],
                "index": index,
                "ids": list(ids),
            },
            **updates,
        )
        self.manifest["durations"] = {**self.manifest.get("durations", {}), "total_s": elapsed}
        self._write_manifest()

    def finish(self, tally: Tally, *, elapsed: float, **updates: Any) -> dict[str, Any]:
        """Final checkpoint with the stop reason, rates and checksums."""
        self.checkpoint(tally, elapsed=elapsed)
        self.manifest.update(
            status="finished",
            stop_reason=tally.stop_reason,
            finished_at=_now(),
            records_per_s=rates(tally, elapsed),
            files=describe_files(self.path, OUTPUTS),
            diversity=diversity_of(self.path / DATA),
            **updates,
        )
        self._write_manifest()
        return self.manifest

    def update(self, **updates: Any) -> None:
        self.manifest.update(updates)
        self._write_manifest()

    def _write_manifest(self) -> None:
        write_manifest(self.path, self.manifest)
        group = (self._group[0], list(self._group[1]))
        self._durable = (dict(self._size), group, dict(self.manifest))
        if self.after_checkpoint is not None:
            self.after_checkpoint()

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


# -- helpers shared with the parallel executor ------------------------------------------


def read_manifest(path: Path) -> dict[str, Any] | None:
    file = path / MANIFEST
    if not file.exists():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SinkError(f"{file} is not valid JSON ({exc}); use --force to start over") from exc
    if not isinstance(data, dict):
        raise SinkError(f"{file} is not a synth manifest; use --force to start over")
    return data


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically: readers see the old or the new one, never half."""
    write_json_atomic(path / MANIFEST, manifest)


def describe_files(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        file = path / name
        if not file.exists():
            continue
        digest, lines, size = hashlib.sha256(), 0, 0
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                lines += chunk.count(b"\n")
                size += len(chunk)
        out[name] = {"sha256": digest.hexdigest(), "bytes": size, "lines": lines}
    return out


def diversity_of(data: Path, sample: int = 2_000) -> dict[str, Any]:
    """Cheap diversity over the first `sample` kept records (distinct values per field,
    distinct-2 of the fields the model wrote, else of all text fields, exact duplicates):
    enough to spot a collapsed template."""
    records = list(itertools.islice(read_jsonl(data), sample))
    written = model_fields(r.meta for r in records) or None
    rows = (r.data for r in records)
    return {
        "sample": sample,
        **profile(rows, text_sample=sample, text_fields=written).diversity(),
    }


def rates(tally: Tally, elapsed: float) -> dict[str, float]:
    if elapsed <= 0:
        return {"kept": 0.0, "generated": 0.0}
    return {
        "kept": round(tally.kept / elapsed, 1),
        "generated": round(tally.generated / elapsed, 1),
    }


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _has_output(path: Path) -> bool:
    return any((path / n).exists() and (path / n).stat().st_size for n in (DATA, REJECTS))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def synth_version() -> str:
    """The installed synth's version, as manifests and the service report it."""
    from importlib.metadata import PackageNotFoundError, version  # ~0.1 s: only when asked

    try:
        return version("synth")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+local"
