"""Cheap text similarity: the checks that run before any judge call.

All pure and deterministic, so a verifier built on them can sit first in a chain: a
paraphrase that copies its input, or an evidence quote the model invented, is rejected
before a model is asked anything.

The character scores are rapidfuzz's (C++, bit-parallel LCS) instead of difflib's
SequenceMatcher, which took about 100 ms per grounding check on a 37k-character chunk and
blocked the event loop for that long; rapidfuzz takes about 2-4 ms on the same input
(35-55x, `tests/text/test_similarity_calibration.py` measures both in one run). The scores
are not identical: `edit_ratio` is the Indel similarity 2*LCS / total length, and
difflib's Ratcliff-Obershelp matching finds at most the LCS, so the new score is never
lower. On near copies the two agree to about 0.005 (a quote with one slip scores ~0.95
either way); on unrelated text rapidfuzz scores about 0.1 higher (an invented quote
~0.55-0.6 instead of ~0.45-0.6). Recalibrated on 3000 sentences of the default corpus
with 0-11 random word edits each, the old decisions are reproduced best at the same
cut-offs, so the defaults stay: `grounding.min_quote` 0.85 (99.9% of decisions agree)
and `novelty.max_edit_ratio` 0.85 (99.1% agree: near 0.85 the new score is 0.002 higher
on average, so a rewrite that difflib put up to 0.01 below the cut-off is now a near
copy). The labeled quotes and paraphrases in that test get the same decisions from both."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel

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
    """Indel similarity (2*LCS / total length, 0..1) of the normalised texts."""
    na, nb = fold_text(a), fold_text(b)
    if na == nb:
        return 1.0
    return _score(Indel.normalized_similarity, na, nb)


def partial_ratio(needle: str, haystack: str) -> float:
    """How well `needle` matches its best-aligned window of `haystack` (0..1).

    1.0 when the normalised needle occurs verbatim. Otherwise rapidfuzz aligns the needle
    against every window of the haystack and the best window's Indel similarity wins: a
    quote with a changed word or dropped comma still scores ~0.9, an invented one
    ~0.5-0.6. A needle at least as long as the haystack is compared whole."""
    n, h = fold_text(needle), fold_text(haystack)
    if not n:
        return 0.0
    if n in h:
        return 1.0
    if len(n) >= len(h):
        return _score(Indel.normalized_similarity, n, h)
    return _score(fuzz.partial_ratio, n, h) / 100.0


def _score(scorer: Any, a: str, b: str) -> float:
    """One pair through `process.cdist`: the same float64 value as calling `scorer`, but
    computed with the GIL released (about 3 us more per call), so a verifier that sends a
    long pair to a thread really frees the event loop (single-pair rapidfuzz calls hold
    the GIL: a 90k-character edit ratio blocked the loop for 0.4 s)."""
    return float(process.cdist([a], [b], scorer=scorer, workers=1, dtype=np.float64)[0, 0])


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
