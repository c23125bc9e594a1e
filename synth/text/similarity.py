"""Cheap text similarity: the checks that run before any judge call.

All pure, deterministic and dependency-free (difflib), so a verifier built on them costs
microseconds and can sit first in a chain: a paraphrase that copies its input, or an
evidence quote the model invented, is rejected before a model is asked anything."""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")
# Typographic variants a model swaps freely when it quotes ("smart" quotes, dashes).
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
    }
)

# Function words ignored when asking "is this answer supported by that text": an answer
# should not count as grounded because it shares "the" and "of" with the evidence.
_STOP = """a an and are as at be been being but by can could did do does for from had has have
    he her his how i if in into is it its itself may me might must my no nor not of on or
    our shall she should so than that the their them then there these they this those to
    was we were what when where which while who whom why will with would you your"""
STOPWORDS = frozenset(_STOP.split())


def fold_text(text: str) -> str:
    """Lowercase, NFKC, typographic quotes and dashes folded, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_FOLD).lower()
    return _SPACE.sub(" ", text).strip()


def folded_words(text: str) -> list[str]:
    return _WORD.findall(fold_text(text))


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def ngram_jaccard(a: str, b: str, n: int = 3) -> float:
    """Jaccard similarity of word n-gram sets: 1.0 for the same words in the same order,
    near 0 for a real rewording. Texts shorter than n words compare as one n-gram."""
    sa, sb = ngrams(folded_words(a), n), ngrams(folded_words(b), n)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def edit_ratio(a: str, b: str) -> float:
    """difflib's similarity ratio (2*matches / total length) of the normalised texts."""
    na, nb = fold_text(a), fold_text(b)
    if na == nb:
        return 1.0
    sm = SequenceMatcher(None, na, nb, autojunk=False)
    if sm.real_quick_ratio() == 0.0:
        return 0.0
    return sm.ratio()


def partial_ratio(needle: str, haystack: str) -> float:
    """How well `needle` matches its best-aligned window of `haystack` (0..1).

    1.0 when the normalised needle occurs verbatim. Otherwise every block difflib aligns
    anchors a window of the needle's length, and the best window's ratio wins: a quote
    with a changed word or dropped comma still scores ~0.9, an invented one ~0.3-0.5."""
    n, h = fold_text(needle), fold_text(haystack)
    if not n:
        return 0.0
    if n in h:
        return 1.0
    if len(n) >= len(h):
        return SequenceMatcher(None, n, h, autojunk=False).ratio()
    best = 0.0
    blocks = SequenceMatcher(None, n, h, autojunk=False).get_matching_blocks()
    for a, b, size in blocks:
        if size == 0:
            continue
        start = min(max(0, b - a), len(h) - len(n))
        window = h[start : start + len(n)]
        best = max(best, SequenceMatcher(None, n, window, autojunk=False).ratio())
        if best >= 0.999:
            break
    return best


def content_words(text: str) -> list[str]:
    return [w for w in folded_words(text) if w not in STOPWORDS]


def support(claim: str, reference: str) -> float:
    """Fraction of the claim's content words that occur in the reference (1.0 when the
    claim has none): a cheap 'is this answer backed by that quote' signal."""
    claimed = content_words(claim)
    if not claimed:
        return 1.0
    have = set(folded_words(reference))
    stems = {w[:5] for w in have}
    hits = sum(1 for w in claimed if w in have or (len(w) > 5 and w[:5] in stems))
    return hits / len(claimed)
