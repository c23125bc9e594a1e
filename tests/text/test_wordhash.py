"""Batch word hashing: the same words as `lexical.words`, whatever the batch around them."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.text.lexical import normalize, words
from synth.text.wordhash import doc_hashes, word_hashes

# ASCII words and punctuation, accented and non-Latin words, odd whitespace
pieces = st.sampled_from(
    ["the", "Cat", "cat", "SAT", "on_it", "42", "café", "Straße", "東京", "naïve", "x", "y" * 300]
    + [" ", "  ", "\t", "\n", "\u00a0", "\u2003", ",", ".", "!?", "'s", "-", "\x1e", "\u201c"]
)
docs = st.lists(pieces, max_size=25).map("".join)


def _one(text: str) -> np.ndarray:
    return word_hashes([text])[0]


@settings(max_examples=150, deadline=None)
@given(st.lists(docs, min_size=1, max_size=8))
def test_words_and_hashes_match_the_lexical_words(batch: list[str]) -> None:
    flat, counts = word_hashes(batch)
    docs_h = doc_hashes(flat, counts)
    assert counts.tolist() == [len(words(t)) for t in batch]
    at = 0
    for text, n, dh in zip(batch, counts.tolist(), docs_h.tolist(), strict=True):
        mine = flat[at : at + n]
        at += n
        # a doc hashes the same alone, normalised, and inside any batch
        assert np.array_equal(mine, _one(text))
        assert np.array_equal(mine, _one(normalize(text)))
        assert dh == int(doc_hashes(*word_hashes([normalize(text)]))[0])
        # equal words, equal hashes
        ws = words(text)
        by_word = {w: int(h) for w, h in zip(ws, mine.tolist(), strict=True)}
        assert len(set(by_word.values())) == len(by_word)


def test_a_huge_token_is_hashed_quickly_and_apart_from_its_neighbours() -> None:
    blob = "QUJD" * 250_000  # one 1 MB "word"
    flat, counts = word_hashes([f"see {blob} here", f"see {blob}x here", "see here"])
    assert counts.tolist() == [3, 3, 2]
    assert flat[0] == flat[3] == flat[6] and flat[1] != flat[4] and flat[2] == flat[5]


def test_doc_hash_sees_word_order_and_nothing_else() -> None:
    h = doc_hashes(*word_hashes(["Hello, World!", "hello   world", "world hello", "", "  ,. "]))
    assert h[0] == h[1] and h[0] != h[2] and h[3] == h[4] and h[3] != h[0]
