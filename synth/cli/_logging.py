"""`-v`, `--log-level LEVEL` and `--log-format text|json`, for every `synth` command.

A nightly batch or a service in a container is read by a log shipper, not a person, so
`--log-format json` writes one JSON object a line (time, level, logger, message, and the
exception when there is one) to stderr. Progress and the final summary are not logs: they
stay plain text on stderr/stdout, and `-q` silences them independently of the log level.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def add_log_arguments(p: argparse.ArgumentParser, *, top: bool) -> None:
    """On the top-level parser with defaults; on each subcommand with SUPPRESS, so that
    `synth -v run ...` and `synth run ... -v` both work and neither resets the other."""
    kw: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        help="more log output (-v info, -vv debug)",
        **({"default": 0} if top else kw),
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        metavar="LEVEL",
        help="log level: DEBUG, INFO, WARNING (default), ERROR, CRITICAL",
        **({"default": None} if top else kw),
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="log lines as text (default) or JSON objects, one a line",
        **({"default": "text"} if top else kw),
    )


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(args: argparse.Namespace) -> int:
    """Install one stderr handler on the root logger; return the level chosen.
    `synth serve` logs its requests at INFO, so INFO is its default."""
    verbose = int(getattr(args, "verbose", 0) or 0)
    name = getattr(args, "log_level", None)
    if name is None:
        default = "INFO" if getattr(args, "command", None) == "serve" else "WARNING"
        name = {0: default, 1: "INFO"}.get(verbose, "DEBUG")
    level = logging.getLevelName(name)
    handler = logging.StreamHandler(sys.stderr)
    if getattr(args, "log_format", "text") == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_synth", False)]:
        root.removeHandler(old)  # main() called twice in one process (tests)
    handler._synth = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return int(level)
