"""Near-dedup on the numpy word-hash path: keep-first and idempotent, on mixed text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synth.curate.dedup import Deduper
from synth.text.lexical import normalize

vocab = st.sampled_from(["alpha", "beta", "gamma", "delta", "Eps", "zeta!", "café", "ETA,", "θ"])
docs = st.lists(vocab, min_size=0, max_size=14).map(" ".join)


def _run(items: list[str], size: int) -> list[tuple[int, object]]:
    """(index, kept or the key of the kept doc it duplicates) in input order."""
    dd = Deduper()
    out: list[tuple[int, object]] = []
    for lo in range(0, len(items), size):
        chunk = items[lo : lo + size]
        verdicts = dd.check(chunk, list(range(lo, lo + len(chunk))))
        out += [(lo + j, None if d is None else d.of) for j, d in enumerate(verdicts)]
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(docs, max_size=40), st.integers(1, 9))
def test_a_duplicate_points_at_an_earlier_kept_doc(items: list[str], size: int) -> None:
    result = _run(items, size)
    kept = {i for i, of in result if of is None}
    for i, of in result:
        if of is not None:
            assert isinstance(of, int) and of < i and of in kept
    # no two kept docs are the same text (up to case, punctuation, spacing), and a later
    # copy of a kept text is dropped in favour of the first
    seen: dict[str, int] = {}
    for i, t in enumerate(items):
        if normalize(t) in seen and seen[normalize(t)] in kept:
            assert i not in kept
        seen.setdefault(normalize(t), i)
    assert len({normalize(items[i]) for i in kept}) == len(kept)


@settings(max_examples=80, deadline=None)
@given(st.lists(docs, max_size=40), st.integers(1, 9))
def test_dedup_of_the_kept_docs_keeps_them_all(items: list[str], size: int) -> None:
    kept = [items[i] for i, of in _run(items, size) if of is None]
    assert all(of is None for _, of in _run(kept, size))
    assert [items[i] for i, of in _run(items, len(items) or 1) if of is None] == kept
