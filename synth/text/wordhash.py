"""Word hashes of a whole batch of texts in numpy: no Python work per word.

Near-dedup reads every word of every document. Going through `lexical.batch_words` and
`WordIds` (a regex pass, a split per document and a dict lookup per word) cost 0.9 s per
30k documents of 60 words, more than the MinHash itself. Here a batch is one byte string:
ASCII text is normalised by a single `bytes.translate` (lowercase; every character that
is neither a word character nor whitespace becomes a space, exactly `lexical.words` on
ASCII), other text by `lexical.words` per document; word boundaries, word hashes and
word counts are then array operations over the bytes.

A word's hash is the polynomial of its UTF-8 bytes mod 2^64, finalised by splitmix64 (a
blake2b for a word over 256 bytes):
stable across processes and machines like `WordIds`' blake2b ids, but not equal to them.
Only dedup uses these, and it compares its hashes with nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b

import numpy as np

from synth.text.lexical import mix64, words

_P = np.uint64(0x100000001B3)
_DOC = np.uint64(0x9E3779B97F4A7C15)
_SPACE = 32
_LONG = 256  # longer words are hashed whole by blake2b
# ASCII: word characters (str.isalnum() or "_") are kept, lowercased; the rest -> space.
_TABLE = bytes(
    (ord(chr(c).lower()) if chr(c).isalnum() or c == 95 else _SPACE) if c < 128 else c
    for c in range(256)
)


def normalized_bytes(texts: Sequence[str]) -> tuple[bytes, np.ndarray]:
    """The batch's normalised text, documents separated by a space, and each document's
    byte offset (n + 1 offsets)."""
    parts = [t.encode("ascii") if t.isascii() else " ".join(words(t)).encode() for t in texts]
    sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts)) + 1
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return b" ".join(parts).translate(_TABLE) + b" ", offsets


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every word, laid out doc after doc, and the number of words per doc."""
    buf, offsets = normalized_bytes(texts)
    b = np.frombuffer(buf, dtype=np.uint8)
    edge = np.diff(np.concatenate([[False], b != _SPACE, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    counts = np.diff(np.searchsorted(starts, offsets)).astype(np.int64)
    return _polynomials(b, starts, ends - starts), counts


def _polynomials(b: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """splitmix64(polynomial of each word's bytes, plus its length). Words are visited
    longest first, so step k touches only words longer than k: O(total bytes) work in
    (longest word) numpy steps. A word longer than _LONG bytes (a URL, a base64 blob) is
    hashed by blake2b instead, so one huge token cannot cost a million numpy steps."""
    out = np.zeros(starts.size, dtype=np.uint64)
    if not starts.size:
        return out
    longest = min(int(lens.max()), _LONG)
    key = np.minimum(lens, _LONG)
    order = np.argsort((longest - key).astype(np.uint16), kind="stable")  # a radix sort
    at, ln = starts[order], key[order]
    live = np.searchsorted(-ln, -np.arange(longest), side="left")  # words longer than k
    h = np.zeros(starts.size, dtype=np.uint64)
    for k, m in enumerate(live.tolist()):
        h[:m] = h[:m] * _P + b[at[:m] + k]
    out[order] = mix64(h ^ (ln.astype(np.uint64) * _DOC))
    raw = b.tobytes() if (lens > _LONG).any() else b""
    for i in np.flatnonzero(lens > _LONG).tolist():
        word = raw[starts[i] : starts[i] + lens[i]]
        out[i] = int.from_bytes(blake2b(word, digest_size=8).digest(), "little")
    return out


def doc_hashes(h: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One 64-bit hash per doc of its word-hash sequence (blake2b; word order matters):
    equal exactly when the normalised texts are equal, up to a 2^-64 collision."""
    raw = h.tobytes()
    ends = np.cumsum(counts) * 8
    bounds = zip((ends - counts * 8).tolist(), ends.tolist(), strict=True)
    digests = b"".join(blake2b(raw[s:e], digest_size=8).digest() for s, e in bounds)
    return np.frombuffer(digests, dtype=np.uint64)
