"""The word view of text that dedup, decontamination and the collapse monitor share.

One normalisation (lowercase, punctuation to spaces, whitespace split) and one hashing
scheme (each distinct word -> a stable 64-bit id, an n-gram -> a polynomial of its word
ids, finalised with splitmix64) so that "the same n-gram" means the same thing in all
three. Everything after the word split is numpy on flat uint64 arrays: Python touches
each word once (a dict lookup), never each n-gram.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

_PUNCT = re.compile(r"[^\w\s]+")
_SEP = "\x1e"  # ASCII record separator: whitespace to the regex, never in a word
_TEXT_FIELDS = ("text", "content", "document", "body")
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_POLY = np.uint64(0x100000001B3)  # FNV prime: odd, so n-gram hashing keeps word order


def words(text: str) -> list[str]:
    """Lowercased words with punctuation removed (the unit of every n-gram here)."""
    return _PUNCT.sub(" ", text.lower()).split()


def normalize(text: str) -> str:
    """The form exact dedup hashes: case, punctuation and spacing do not make a new record."""
    return " ".join(words(text))


def text_of(data: Any) -> str:
    """The text a model will read from a record's payload: `text` (or `content`, ...) when
    the payload has one, chat `messages` contents, else every string leaf in field order."""
    if isinstance(data, str):
        return data
    if isinstance(data, Mapping):
        for key in _TEXT_FIELDS:
            if isinstance(data.get(key), str):
                return str(data[key])
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)
        elif v is not None and not isinstance(v, bool):
            parts.append(str(v))

    walk(data)
    return " ".join(parts)


def token_count(text: str) -> int:
    """Whitespace tokens: the unit of every ratio and budget in the mixer (no tokenizer
    dependency, and the same on every machine)."""
    return len(text.split())


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads polynomial n-gram hashes over all 64 bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


class _IdTable(dict[str, int]):
    """word -> id; a missing word is hashed on first sight (so lookups stay in C)."""

    def __missing__(self, word: str) -> int:
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        self[word] = h
        return h


class WordIds:
    """Stable 64-bit ids for words (blake2b, so the same in every process), cached.

    The cache is cleared when it grows past `max_size` words, which bounds memory on
    endless streams at the cost of re-hashing (ids never change)."""

    def __init__(self, max_size: int = 2_000_000) -> None:
        self._ids = _IdTable()
        self._max = max_size

    def ids(self, toks: Sequence[str]) -> list[int]:
        if len(self._ids) >= self._max:
            self._ids.clear()
        return list(map(self._ids.__getitem__, toks))

    def flat(self, docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """All docs' word ids in one uint64 array, and each doc's length."""
        if len(self._ids) >= self._max:
            self._ids.clear()
        lengths = np.fromiter((len(t) for t in docs), dtype=np.int64, count=len(docs))
        flat = np.fromiter(
            map(self._ids.__getitem__, chain.from_iterable(docs)),
            dtype=np.uint64,
            count=int(lengths.sum()),
        )
        return flat, lengths


def batch_words(texts: Sequence[str]) -> list[list[str]]:
    """`words` of many texts with one regex pass over their concatenation."""
    if len(texts) < 8:
        return [words(t) for t in texts]
    joined = _SEP.join(texts)
    parts = _PUNCT.sub(" ", joined.lower()).split(_SEP)
    if len(parts) != len(texts):  # a text contained the separator itself
        return [words(t) for t in texts]
    return [p.split() for p in parts]


def ngram_hashes(flat: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every word n-gram that lies inside one doc, in doc order, and the count
    per doc. n-grams never straddle two docs."""
    total = int(flat.size)
    if total < n:
        return np.zeros(0, dtype=np.uint64), np.zeros(len(lengths), dtype=np.int64)
    span = total - n + 1
    h = flat[:span].copy()
    for k in range(1, n):
        h = h * _POLY + flat[k : span + k]
    h = mix64(h ^ np.uint64(n))
    ends = np.cumsum(lengths)
    doc_end = np.repeat(ends, lengths)[:span]
    keep = np.arange(span, dtype=np.int64) + n <= doc_end
    counts = np.maximum(lengths - n + 1, 0)
    return h[keep], counts


def doc_ngrams(ids: Sequence[int], n: int) -> np.ndarray:
    """The n-gram hashes of one word-id sequence (same values as `ngram_hashes`)."""
    arr = np.asarray(ids, dtype=np.uint64)
    return ngram_hashes(arr, np.array([arr.size], dtype=np.int64), n)[0]


def doc_offsets(counts: np.ndarray) -> np.ndarray:
    """Start offset of each doc's block in a flat per-doc array of `counts` items."""
    out = np.zeros(len(counts), dtype=np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=out[1:])
    return out
