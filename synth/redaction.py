"""Keeping API keys out of everything synth writes or prints.

Error messages from providers sometimes quote the key that was sent ("Incorrect API key
provided: sk-..."). Every message the LLM layer builds from a provider error goes through
`redact` with the secret values of the environment and of the call's own parameters."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def secret_values(extra: Iterable[object] = ()) -> list[str]:
    """Values of environment variables named like secrets, plus `extra`, longest first."""
    values = [v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8]
    values += [str(x) for x in extra if x]
    return sorted(set(values), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text
