"""Keeping API keys out of everything synth writes or prints.

Error messages from providers sometimes quote the key that was sent ("Incorrect API key
provided: sk-..."). Every message the LLM layer builds from a provider error goes through
`redact` with the secret values of the environment and of the call's own parameters."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

# The one policy for "this name holds a secret", used for environment variables (redaction,
# what a Ray worker is sent) and recipe settings (the manifest): a name is a secret's when
# one of its words ends with one of these, so `OPENAI_API_KEY`, `apikey` and `db_password`
# are, and `keyboard_layout` is not.
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS")
_WORD = re.compile(r"[^A-Za-z0-9]+")


def is_secret_name(name: str) -> bool:
    """Whether a variable or setting called `name` holds a secret (see `_SECRET_WORDS`)."""
    return any(w.upper().endswith(_SECRET_WORDS) for w in _WORD.split(name) if w)


def secret_values(extra: Iterable[object] = ()) -> list[str]:
    """Values of environment variables named like secrets, plus `extra`, longest first."""
    values = [v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= 8]
    values += [str(x) for x in extra if x]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


# An absolute path, not part of a URL: `/srv/app/x.py` -> `.../x.py`.
_ABS_PATH = re.compile(r"(?<![\w.~:/<])/(?:[\w.@+-]+/)+([\w.@+-]*)")


def scrub_paths(text: str, roots: Iterable[tuple[str | Path, str]] = ()) -> str:
    """A message a remote client sees, without the server's file layout: each of `roots`
    becomes its label (the project folder "", the state dir "<state>/"), and any other
    absolute path keeps only its last part. The full message stays in the server's log."""
    for root, label in sorted(roots, key=lambda r: -len(str(r[0]))):
        base = str(root).rstrip("/")
        text = text.replace(base + "/", label).replace(base, label.rstrip("/") or ".")
    for prefix in ("Traceback (most recent call last)",):
        if prefix in text:
            text = text.split(prefix)[0] + "(traceback omitted)"
    return _ABS_PATH.sub(lambda m: ".../" + m.group(1), text)
