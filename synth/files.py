"""Files synth reads and writes, one way each: atomic writes, JSONL lines, the state dir.

Every output synth writes whole (a manifest, a report, an export, a selection) is written
through `atomic_output`: a temp file beside the target, flushed and fsynced, then renamed
over it, so a reader sees the old file or the new one and a killed process leaves no half
file. Every JSONL file synth reads goes through `jsonl_lines`, which treats a last line
cut short by a crash the same way everywhere: skipped, since nothing complete was there.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from synth.errors import ConfigError


def state_dir() -> Path:
    """Where the response cache, job state and monitor histories live across runs:
    `$SYNTH_STATE_DIR`, or `./.synth-state`."""
    return Path(os.environ.get("SYNTH_STATE_DIR") or ".synth-state")


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside `path` for writing; when the block ends without an error
    it is synced and renamed over `path`, otherwise removed (the old file stays)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_output(path) as fh:
        fh.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """`obj` as indented, key-sorted JSON (what manifests and reports look like)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def jsonl_lines(
    path: str | Path, *, what: str = "a JSON value", tolerant: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file.

    A last line without its newline that does not parse is a write cut short by a crash
    (or a line still being written): it is skipped (resume truncates it). Any other line
    that is not JSON is the file's fault, not a crash's: a ConfigError names the file and
    line, unless `tolerant` (a report or a history read while runs write them), which
    skips it. `.gz` files are read through gzip."""
    opener: Any = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:  # bytes, decoded per line: errors name the right line
        for number, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if tolerant:
                    continue
                if not raw.endswith(b"\n"):
                    return  # a torn last line, cut inside a character
                raise ConfigError(
                    "not UTF-8 text",
                    file=str(path),
                    path=f"line {number}",
                    expected="a UTF-8 JSONL file",
                    found=f"byte {raw[exc.start : exc.start + 1]!r} at column {exc.start + 1}",
                    fix="re-encode the file as UTF-8 (e.g. iconv -t utf-8)",
                ) from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if tolerant:
                    continue
                if not line.endswith("\n"):
                    return  # a torn last line
                raise ConfigError(
                    "invalid JSON line",
                    file=str(path),
                    path=f"line {number}",
                    expected=what,
                    found=f"{line.strip()[:60]!r} ({exc.msg})",
                    fix="fix or remove that line",
                ) from exc
            yield number, value
