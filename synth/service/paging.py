"""Pages of a growing JSONL file by record offset, without re-reading it for every page.

`GET /v1/jobs/{id}/records?offset=&limit=` must answer in time proportional to the page,
not to the file: a sparse index remembers the byte position of every 1024th line and
extends itself incrementally as the run appends. Only lines the engine has checkpointed
(`limit_bytes`) are served: bytes past the checkpoint may be cut back if the job is
killed and resumed, and a client must never see a record that later disappears.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

STEP = 1024
CHUNK = 1 << 18


class LineIndex:
    """Byte offsets of every STEP-th line of one file. Thread-safe; call `refresh` and
    `read` from a worker thread (they do file I/O)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.marks: list[int] = [0]  # marks[k] = byte offset of line k * STEP
        self.lines = 0
        self.scanned = 0  # bytes covered, always just after a newline

    def refresh(self, limit_bytes: int | None = None) -> int:
        """Index complete lines up to `limit_bytes` (default: the file's size); returns
        how many lines are available."""
        with self._lock:
            try:
                size = os.path.getsize(self.path)
            except OSError:
                self._reset()
                return 0
            end = size if limit_bytes is None else min(size, limit_bytes)
            if end < self.scanned:  # the file was cut back (a resumed run): start over
                self._reset()
            if end > self.scanned:
                self._scan(end)
            return self.lines

    def _scan(self, end: int) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(self.scanned)
            pos = self.scanned
            while pos < end:
                chunk = fh.read(min(CHUNK, end - pos))
                if not chunk:
                    break
                start = 0
                while (nl := chunk.find(b"\n", start)) != -1:
                    self.lines += 1
                    start = nl + 1
                    if self.lines % STEP == 0:
                        self.marks.append(pos + start)
                if start:
                    self.scanned = pos + start  # a partial last line is scanned again later
                pos += len(chunk)

    def read(self, offset: int, count: int) -> Iterator[bytes]:
        """Chunks holding exactly lines [offset, offset + count) (indexed lines only)."""
        with self._lock:
            count = max(0, min(count, self.lines - offset))
            if count == 0:
                return iter(())
            mark = offset // STEP
            start, skip = self.marks[mark], offset - mark * STEP
        return self._read(start, skip, count)

    def _read(self, start: int, skip: int, count: int) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            fh.seek(start)
            for _ in range(skip):
                fh.readline()
            buf: list[bytes] = []
            size = 0
            for _ in range(count):
                line = fh.readline()
                buf.append(line)
                size += len(line)
                if size >= CHUNK:
                    yield b"".join(buf)
                    buf, size = [], 0
            if buf:
                yield b"".join(buf)
