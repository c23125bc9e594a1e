"""Cheap corpus statistics that move when a generator collapses: fewer distinct n-grams,
more compressible text, higher self-BLEU, a thinner tail of rare n-grams.

Each metric is computed on word ids in numpy, so the full set costs seconds per 100k
documents on one core: distinct-2/4 (phrase-level diversity), zlib compression ratio
(templating), self-BLEU-4 (cross-sample similarity, on a sample, with the O(n) top-2
clipped-count trick and brevity penalty 1), rare-bigram coverage and novel-bigram rate
against a real reference (tail loss; memorisation or garbage), a Vendi score on hashed
bigram features (effective number of distinct documents, order 2),
the Wasserstein-1 distance of length distributions, and exact/near duplicate rates.
distinct-1 and mean variance are deliberately absent: both stay flat while tails vanish.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.curate.dedup import LSHParams, band_keys, permutations, signatures_from_ids
from synth.text.lexical import WordIds, batch_words, doc_offsets, mix64, ngram_hashes

VENDI_DIM = 1024
COMPRESS_BYTES = 10_000_000
_LSH = LSHParams()
_PERMS = permutations(_LSH.num_perm, _LSH.seed)


@dataclass
class Corpus:
    """Documents as word ids, laid out doc after doc (plus their raw text for zlib)."""

    texts: list[str]
    ids: np.ndarray
    lengths: np.ndarray

    @classmethod
    def from_texts(cls, texts: Sequence[str], words: WordIds | None = None) -> Corpus:
        words = words or WordIds()
        flat, lengths = words.flat(batch_words(texts))
        return cls(list(texts), flat, lengths)

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: np.ndarray) -> Corpus:
        """The documents at `idx`, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        starts = doc_offsets(self.lengths)[idx]
        lens = self.lengths[idx]
        total = int(lens.sum())
        shift = np.repeat(starts - doc_offsets(lens), lens)
        pos = shift + np.arange(total, dtype=np.int64)
        return Corpus([self.texts[i] for i in idx.tolist()], self.ids[pos], lens)

    def sample(self, n: int, rng: np.random.Generator) -> Corpus:
        if n >= len(self):
            return self
        return self.take(np.sort(rng.choice(len(self), size=n, replace=False)))

    def ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return ngram_hashes(self.ids, self.lengths, n)


@dataclass
class Reference:
    """What the rare-coverage and novelty metrics compare against: a real corpus's
    distinct bigrams, its rare ones (count <= 2) and its length distribution."""

    bigrams: np.ndarray
    rare: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, corpus: Corpus) -> Reference:
        grams, _ = corpus.ngrams(2)
        uniq, counts = np.unique(grams, return_counts=True)
        return cls(uniq, uniq[counts <= 2], corpus.lengths.astype(np.float64))


def _member(sorted_arr: np.ndarray, q: np.ndarray) -> np.ndarray:
    if not sorted_arr.size or not q.size:
        return np.zeros(q.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_arr, q), sorted_arr.size - 1)
    return np.asarray(sorted_arr[pos] == q)


def measure(
    corpus: Corpus,
    ref: Reference,
    *,
    self_bleu_sample: int = 1000,
    vendi_sample: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric for one corpus (its whole self; sample before calling)."""
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    big, _ = corpus.ngrams(2)
    uniq, counts = np.unique(big, return_counts=True)
    out["distinct_2"] = uniq.size / big.size if big.size else 0.0
    four, _ = corpus.ngrams(4)
    out["distinct_4"] = np.unique(four).size / four.size if four.size else 0.0
    out["compression_ratio"] = compression_ratio(corpus.texts)
    bleu_docs = corpus.sample(self_bleu_sample, rng)
    out["self_bleu"] = self_bleu(bleu_docs.ids, bleu_docs.lengths)
    out["rare_coverage"] = float(_member(uniq, ref.rare).mean()) if ref.rare.size else 1.0
    novel = ~_member(ref.bigrams, uniq)
    out["novel_rate"] = float((counts * novel).sum() / counts.sum()) if counts.size else 0.0
    vd = corpus.sample(vendi_sample, rng)
    out["vendi"] = vendi(vd.ids, vd.lengths)
    out["length_w1"] = length_w1(corpus.lengths.astype(np.float64), ref.lengths)
    out["exact_dup_rate"] = exact_dup_rate(corpus.ids, corpus.lengths)
    out["near_dup_rate"] = near_dup_rate(corpus.ids, corpus.lengths)
    return out


def compression_ratio(texts: Sequence[str]) -> float:
    """zlib-compressed / raw size of (up to 10 MB of) the texts; low means repetitive."""
    raw = "\n".join(texts).encode("utf-8")[:COMPRESS_BYTES]
    return len(zlib.compress(raw, 6)) / len(raw) if raw else 0.0


def self_bleu(ids: np.ndarray, lengths: np.ndarray, max_n: int = 4) -> float:
    """Mean BLEU-4 of each document against all the others as references.

    Exact clipped counts without the O(N^2) loop: for each n-gram keep the largest and
    second-largest per-document count; a document's clip is the largest count among the
    *other* documents. Brevity penalty is taken as 1 (with hundreds of references one
    always has about the hypothesis length). Smoothing: epsilon 0.1 for empty orders."""
    n_docs = len(lengths)
    if n_docs < 2:
        return 0.0
    log_p = np.zeros(n_docs)
    for n in range(1, max_n + 1):
        grams, counts_per_doc = ngram_hashes(ids, lengths, n)
        doc = np.repeat(np.arange(n_docs), counts_per_doc)
        den = np.bincount(doc, minlength=n_docs).astype(np.float64)
        num: np.ndarray = np.zeros(n_docs)
        if grams.size:
            pair = mix64(grams ^ (doc.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
            _, first, c = np.unique(pair, return_index=True, return_counts=True)
            g, d = grams[first], doc[first]
            order = np.lexsort((-c, g))
            g, d, c = g[order], d[order], c[order]
            start = np.concatenate([[True], g[1:] != g[:-1]])
            gid = np.cumsum(start) - 1
            heads = np.nonzero(start)[0]
            top1, top1_doc = c[heads], d[heads]
            size = np.diff(np.append(heads, g.size))
            top2 = np.where(size > 1, c[np.minimum(heads + 1, g.size - 1)], 0)
            other = np.where(d == top1_doc[gid], top2[gid], top1[gid])
            num = np.bincount(d, weights=np.minimum(c, other), minlength=n_docs)
        p = np.where(num > 0, num, 0.1) / np.maximum(den, 1.0)
        log_p += np.log(p)
    return float(np.exp(log_p / max_n).mean())


def vendi(ids: np.ndarray, lengths: np.ndarray, dim: int = VENDI_DIM) -> float:
    """Vendi score of order 2 (Pasarkar & Dieng's "cousins" of the Vendi score): the
    effective number of distinct documents, 1 / sum(lambda_i^2) over the spectrum of the
    cosine-kernel matrix on hashed bigram counts. Order 2 needs no eigendecomposition
    (sum(lambda^2) = ||X^T X / n||_F^2, a d x d product), which keeps it fast and immune to
    BLAS thread contention, and it reacts more strongly than order 1 to a few dominant
    modes, which is what collapse produces."""
    n_docs = len(lengths)
    if n_docs == 0:
        return 0.0
    grams, counts = ngram_hashes(ids, lengths, 2)
    doc = np.repeat(np.arange(n_docs), counts)
    bucket = (grams % np.uint64(dim)).astype(np.int64)
    x = np.bincount(doc * dim + bucket, minlength=n_docs * dim).reshape(n_docs, dim)
    x = x.astype(np.float32)
    norms = np.linalg.norm(x, axis=1)
    x = x[norms > 0] / norms[norms > 0, None]
    if not len(x):
        return 0.0
    k = (x.T @ x).astype(np.float64) / len(x)
    return float(np.trace(k) ** 2 / np.square(k).sum())


def length_w1(lengths: np.ndarray, ref_lengths: np.ndarray) -> float:
    """Wasserstein-1 between length distributions, in units of the reference's std."""
    if not lengths.size or not ref_lengths.size:
        return 0.0
    q = np.linspace(0.0, 1.0, 1001)
    w1 = float(np.abs(np.quantile(lengths, q) - np.quantile(ref_lengths, q)).mean())
    return w1 / max(float(ref_lengths.std()), 1.0)


def doc_hashes(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """One order-sensitive 64-bit hash per document of its word ids."""
    pos = np.arange(ids.size, dtype=np.int64) - np.repeat(doc_offsets(lengths), lengths)
    mixed = mix64(ids ^ (pos.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    out = np.zeros(len(lengths), dtype=np.uint64)
    nz = lengths > 0
    if nz.any():
        out[nz] = np.add.reduceat(mixed, doc_offsets(lengths)[nz])
    return mix64(out ^ lengths.astype(np.uint64))


def exact_dup_rate(ids: np.ndarray, lengths: np.ndarray) -> float:
    if not len(lengths):
        return 0.0
    return 1.0 - np.unique(doc_hashes(ids, lengths)).size / len(lengths)


def near_dup_rate(ids: np.ndarray, lengths: np.ndarray) -> float:
    """Share of documents that collide (MinHash LSH, 14 x 8, word 5-grams) with an
    earlier one: the rate dedup would remove."""
    n_docs = len(lengths)
    if n_docs < 2:
        return 0.0
    keys = band_keys(signatures_from_ids(ids, lengths, _LSH, *_PERMS), _LSH)
    flat = keys.ravel()
    doc = np.repeat(np.arange(n_docs), _LSH.bands)
    order = np.lexsort((doc, flat))
    sk, sd = flat[order], doc[order]
    later = np.concatenate([[False], sk[1:] == sk[:-1]])
    dup = np.zeros(n_docs, dtype=bool)
    dup[sd[later]] = True
    return float(dup.mean())


def tail_audit(
    kept: Sequence[str],
    rejected: Sequence[str],
    *,
    ref: Reference | None = None,
    tail: float = 0.2,
    draws: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Does verification cut the distribution's tail?

    Each document of kept+rejected gets a rarity score, the mean surprisal of its bigrams
    (counts from kept+rejected); the `tail` (20%) rarest documents are the tail. A filter
    that is neutral to the tail keeps them at its pass rate, so the audit ratio is
    P(tail | kept) / P(tail): < 0.8 warn, < 0.5 fail. Also reported: rare-bigram coverage
    of the kept records over that of random subsets of the same size (rare = count <= 2
    in the anchor reference, or in the batch)."""
    if not rejected or not kept:
        return {
            "status": "ok",
            "ratio": None,
            "reason": "nothing rejected to compare",
            "pass_rate": 1.0,
        }
    pre = Corpus.from_texts([*kept, *rejected])
    grams, counts = pre.ngrams(2)
    uniq, freq = np.unique(grams, return_counts=True)
    surprisal = -np.log((freq + 1.0) / (grams.size + uniq.size))
    per_gram = surprisal[np.searchsorted(uniq, grams)]
    doc = np.repeat(np.arange(len(pre)), counts)
    rarity = np.bincount(doc, weights=per_gram, minlength=len(pre)) / np.maximum(counts, 1)
    k = len(kept)
    cut = np.quantile(rarity, 1.0 - tail)
    in_tail = rarity >= cut
    share = in_tail.mean()
    ratio = float(in_tail[:k].mean() / share) if share > 0 else 1.0
    rare = ref.rare if ref is not None and ref.rare.size else uniq[freq <= 2]
    rng = np.random.default_rng(seed)

    def coverage(c: Corpus) -> float:
        g, _ = c.ngrams(2)
        return float(np.isin(rare, g).mean()) if rare.size else 1.0

    expected = float(np.mean([coverage(pre.sample(k, rng)) for _ in range(draws)]))
    cov_ratio = coverage(pre.take(np.arange(k))) / expected if expected > 0 else 1.0
    status = "fail" if ratio < 0.5 else "warn" if ratio < 0.8 else "ok"
    return {
        "status": status,
        "ratio": ratio,
        "coverage_ratio": cov_ratio,
        "pass_rate": k / (k + len(rejected)),
        "reason": (
            f"verifier tail audit: the kept records hold {ratio:.2f}x their share of the "
            f"{tail:.0%} rarest documents (a tail-neutral filter: 1.0; warn < 0.8, fail < 0.5)"
        ),
    }
