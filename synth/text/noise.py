"""Noise operators for perturbation: pure functions of (value, rate, rng) -> (value, changes).

Each returns the new value and a list of change dicts (op, position or token, before/after)
that the perturb step stores as lineage. Rates mean what a user would measure afterwards:
character ops (`typo`, `drop`, `swap`) per character, `case` and `token_dropout` per
token (word), `whitespace` per gap between tokens. Positions are those of the string at the
moment of the change (ops run in a fixed order: tokens, characters, case, whitespace).
"""

from __future__ import annotations

import datetime
import math
import random
import re
from typing import Any

Change = dict[str, Any]

_ROWS = ("1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm")
_OFFSETS = (0.0, 0.5, 0.75, 1.25)  # the stagger of a physical QWERTY keyboard


def _adjacent() -> dict[str, str]:
    pos = {c: (r, j + _OFFSETS[r]) for r, row in enumerate(_ROWS) for j, c in enumerate(row)}
    out: dict[str, str] = {}
    for c, (r, x) in pos.items():
        near = [
            d
            for d, (r2, x2) in pos.items()
            if d != c and ((r2 == r and abs(x2 - x) == 1) or (abs(r2 - r) == 1 and abs(x2 - x) < 1))
        ]
        out[c] = "".join(sorted(near))
    for c in list(out):
        if c.isalpha():
            out[c.upper()] = out[c].upper()
    return out


QWERTY = _adjacent()
_TOKENS = re.compile(r"(\s+)")


def chars(
    text: Any, rng: random.Random, typo: float, drop: float, swap: float
) -> tuple[Any, list[Change]]:
    """Keyboard-adjacent typos, dropped characters and swapped neighbours, one draw per char."""
    if not isinstance(text, str):
        return text, []
    out: list[str] = []
    changes: list[Change] = []
    t1, t2 = drop + typo, drop + typo + swap
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        r = rng.random()
        if r < drop:
            changes.append({"op": "drop", "pos": len(out), "before": c})
        elif r < t1 and c in QWERTY:
            near = QWERTY[c]
            new = near[int(rng.random() * len(near))]
            changes.append({"op": "typo", "pos": len(out), "before": c, "after": new})
            out.append(new)
        elif r < t2 and i + 1 < n and text[i + 1] != c:
            changes.append(
                {"op": "swap", "pos": len(out), "before": c + text[i + 1], "after": text[i + 1] + c}
            )
            out += (text[i + 1], c)
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out), changes


def token_dropout(text: Any, rng: random.Random, rate: float) -> tuple[Any, list[Change]]:
    """Drop words (with the whitespace after them); never the last word left."""
    if not isinstance(text, str):
        return text, []
    parts = _TOKENS.split(text)
    words = [i for i in range(0, len(parts), 2) if parts[i]]
    changes: list[Change] = []
    keep = len(words)
    for w_idx, i in enumerate(words):
        if keep > 1 and rng.random() < rate:
            changes.append({"op": "token_dropout", "token": w_idx, "before": parts[i]})
            parts[i] = ""
            if i + 1 < len(parts):
                parts[i + 1] = ""
            keep -= 1
    return ("".join(parts), changes) if changes else (text, changes)


_CASES = (str.lower, str.upper, str.title, str.swapcase)


def case(text: Any, rng: random.Random, rate: float) -> tuple[Any, list[Change]]:
    """Recase words (lower, UPPER, Title, sWAPPED), as people and OCR do."""
    if not isinstance(text, str):
        return text, []
    parts = _TOKENS.split(text)
    changes: list[Change] = []
    w_idx = -1
    for i in range(0, len(parts), 2):
        word = parts[i]
        if not word:
            continue
        w_idx += 1
        if rng.random() < rate:
            options = [new for f in _CASES if (new := f(word)) != word]
            if options:
                new = options[int(rng.random() * len(options))]
                changes.append({"op": "case", "token": w_idx, "before": word, "after": new})
                parts[i] = new
    return ("".join(parts), changes) if changes else (text, changes)


def whitespace(text: Any, rng: random.Random, rate: float) -> tuple[Any, list[Change]]:
    """Per gap between words: remove it, double it, or turn it into a tab."""
    if not isinstance(text, str):
        return text, []
    parts = _TOKENS.split(text)
    changes: list[Change] = []
    pos = 0
    for i, part in enumerate(parts):
        if i % 2 == 1 and rng.random() < rate:
            new = ("", part + " ", "\t")[int(rng.random() * 3)]
            if new != part:
                changes.append({"op": "whitespace", "pos": pos, "before": part, "after": new})
                parts[i] = new
        pos += len(parts[i])
    return ("".join(parts), changes) if changes else (text, changes)


_NUMERIC = re.compile(r"-?\d+(\.(\d+))?")


def jitter(value: Any, rng: random.Random, bound: float) -> tuple[Any, list[Change]]:
    """Multiply by 1 + u, |u| <= bound, keeping type and decimal places; the result is
    always within `bound` of the original, relative, even after rounding."""
    if isinstance(value, bool):
        return value, []
    if isinstance(value, str):
        m = _NUMERIC.fullmatch(value.strip())
        if not m:
            return value, []
        decimals = len(m.group(2) or "")
        new_num = _jitter_number(float(value), rng, bound, decimals if m.group(1) else 0)
        new: Any = f"{new_num:.{decimals}f}"
    elif isinstance(value, int):
        new = int(_jitter_number(float(value), rng, bound, 0))
    elif isinstance(value, float) and math.isfinite(value):
        text = repr(value)
        places = len(text.split(".")[1]) if "." in text and "e" not in text else None
        new = _jitter_number(value, rng, bound, places)
    else:
        return value, []
    return new, [{"op": "jitter", "before": value, "after": new}]


def _jitter_number(x: float, rng: random.Random, bound: float, decimals: int | None) -> float:
    u = rng.uniform(-bound, bound)
    new = x * (1 + u)
    if decimals is None:
        return new
    rounded = round(new, decimals)
    limit = bound * abs(x)
    if abs(rounded - x) <= limit:
        return rounded
    q = 10.0**-decimals
    return round(x + math.copysign(math.floor(limit / q) * q, u), decimals)


def shift_date(value: Any, rng: random.Random, days: float) -> tuple[Any, list[Change]]:
    """Move a date, datetime or ISO string by up to +-days (whole days for dates, whole
    seconds for datetimes), keeping its type and textual form."""
    if isinstance(value, datetime.datetime):
        secs = _nonzero(rng, int(days * 86400))
        new: Any = value + datetime.timedelta(seconds=secs)
        return new, [{"op": "date_shift", "before": value, "after": new, "days": secs / 86400}]
    if isinstance(value, datetime.date):
        d = _nonzero(rng, int(days))
        new = value + datetime.timedelta(days=d)
        return new, [{"op": "date_shift", "before": value, "after": new, "days": d}]
    if not isinstance(value, str) or len(value) < 10:
        return value, []
    try:
        if len(value) == 10:
            day = datetime.date.fromisoformat(value)
            d = _nonzero(rng, int(days))
            new = (day + datetime.timedelta(days=d)).isoformat()
            return new, [{"op": "date_shift", "before": value, "after": new, "days": d}]
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return value, []
    secs = _nonzero(rng, int(days * 86400))
    moved = parsed + datetime.timedelta(seconds=secs)
    frac = re.search(r":\d\d\.(\d+)", value)
    spec = (
        "auto"
        if not frac
        else {3: "milliseconds", 6: "microseconds"}.get(len(frac.group(1)), "auto")
    )
    new = moved.isoformat(sep=value[10], timespec=spec)
    if value.endswith("Z") and new.endswith("+00:00"):
        new = new[:-6] + "Z"
    return new, [{"op": "date_shift", "before": value, "after": new, "days": secs / 86400}]


def _nonzero(rng: random.Random, span: int) -> int:
    if span <= 0:
        return 0
    d = rng.randint(1, span)
    return d if rng.random() < 0.5 else -d


def shuffle(value: Any, rng: random.Random, rate: float) -> tuple[Any, list[Change]]:
    if not isinstance(value, list) or len(value) < 2 or rng.random() >= rate:
        return value, []
    new = list(value)
    rng.shuffle(new)
    return new, [{"op": "shuffle", "before": value, "after": new}]
