"""Exact and near-duplicate removal that keeps the record worth keeping.

Exact: a 64-bit blake2b of the normalised text's word hashes (case, punctuation, spacing
ignored).

Near: MinHash over word 5-gram shingles with LSH banding. A pair with Jaccard s becomes a
candidate with probability P(s) = 1 - (1 - s^r)^b, an S-curve. `LSHParams.for_threshold`
picks, among b x r <= 128 permutations, the curve with the least false-positive area below
the threshold that still finds >= 75% of pairs *at* the threshold. For 0.75 that is
datatrove's (FineWeb's) 14 x 8 = 112 permutations:

    Jaccard      0.5    0.6    0.7    0.75   0.8    0.9
    P(merged)    0.05   0.21   0.56   0.77   0.92   1.00

(datasketch's own optimiser balances the two error areas instead, which at t=0.9 finds a
0.9 pair only 31% of the time, too few for dedup against near copies.)

The permutations are datasketch's "affine32" family bit for bit (seed 1, MurmurHash3
finaliser, a*h+b mod 2^32), so a signature here equals `datasketch.MinHash(num_perm,
seed=1)` fed the same shingle hashes; what differs is speed. Words are hashed from the
batch's bytes in numpy (`synth.text.wordhash`, no Python per word), shingles are
polynomials of word hashes, and each permutation is one pass over a block of shingles.

Why not rensa (Rust R-MinHash, 9x datasketch here): its sketch is cheaper per shingle,
but a signature matrix leaves it only as Python lists of ints (converting 4096 x 112 cost
more than our whole MinHash of those documents), and its streaming deduplicator says
keep/drop, not which kept record a copy duplicates (`Duplicate.of`, `dup_of_real`). On
30k documents in one run of `bench/dedup_and_monitor.py`: this module 52k docs/s, rensa
22k, datasketch 2.5k; planted near-copy recall 0.970, 0.961, 0.966. (Per-word dict
lookups and one (shingles x perms) block, as before, were 3.1x slower at equal recall.)

Streaming and keep-first: a document is a duplicate when it collides with one already
*kept*; callers feed records in priority order (anchor, real, then synthetic oldest
first), so a cluster keeps its real record, else its oldest synthetic one. Only kept
documents enter the index, which makes dedup idempotent (kept documents never collide
with each other). Memory is bounded by the kept count: 16 bytes per band (14 bands),
8 bytes of exact hash, and the caller's key, per kept document; no text is held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synth.errors import ConfigError
from synth.records import Record
from synth.text.lexical import mix64, ngram_hashes
from synth.text.wordhash import doc_hashes, word_hashes

_U32 = np.uint32
_FMIX32 = (_U32(16), _U32(0x85EBCA6B), _U32(13), _U32(0xC2B2AE35), _U32(16))
_CHUNK = 1 << 18  # shingles per block: 1 MB of uint32, one pass per permutation


@dataclass(frozen=True, slots=True)
class LSHParams:
    """Bands x rows of the LSH index, shingle size and permutation seed."""

    bands: int = 14
    rows: int = 8
    ngram: int = 5
    seed: int = 1

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def probability(self, jaccard: float) -> float:
        """P(a pair with this Jaccard similarity is merged): the S-curve."""
        return float(1.0 - (1.0 - jaccard**self.rows) ** self.bands)

    @classmethod
    def for_threshold(cls, threshold: float, *, max_perm: int = 128, ngram: int = 5) -> LSHParams:
        """The (b, r) with >= 75% recall at `threshold` and the least false-positive area
        below it (module docstring)."""
        if not 0.0 < threshold < 1.0:
            raise ConfigError(
                "near-duplicate threshold out of range",
                path="threshold",
                expected="a Jaccard similarity strictly between 0 and 1 (0.75 is usual)",
                found=threshold,
            )
        xs = np.linspace(0.0, threshold, 401)
        best: tuple[float, int, int] | None = None
        for r in range(1, max_perm + 1):
            for b in range(1, max_perm // r + 1):
                if 1.0 - (1.0 - threshold**r) ** b < 0.75:
                    continue
                fp = float(np.trapezoid(1.0 - (1.0 - xs**r) ** b, xs))
                if best is None or fp < best[0] - 1e-12:
                    best = (fp, b, r)
                break  # larger b for this r only adds false positives
        assert best is not None  # b=max_perm, r=1 always qualifies
        return cls(bands=best[1], rows=best[2], ngram=ngram)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b), same RNG draws."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=_U32) * _U32(2) + _U32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=_U32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX32
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


def minhash_from_hashes(
    shingles: np.ndarray, counts: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Signatures (docs x perms, uint32) from 32-bit shingle hashes laid out doc after doc.
    A doc with no shingles gets the all-max signature (datasketch's empty MinHash).

    One permutation at a time over a block of shingles: each pass is a 1-D multiply-add
    and `minimum.reduceat` on a cache-resident array. Measured on 4096 docs of 56
    shingles, 7x faster than permuting the whole (shingles x perms) block and reducing it
    along axis 0 as this did before; the values are the same."""
    n, p = len(counts), len(a)
    sig = np.full((n, p), np.iinfo(np.uint32).max, dtype=np.uint32)
    if not shingles.size:
        return sig
    mixed = _fmix32(shingles.astype(np.uint32, copy=False))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    start = 0
    while start < n:
        # Grow the block of docs until it holds about _CHUNK shingles.
        limit = offsets[start] + _CHUNK
        stop = max(int(np.searchsorted(offsets, limit, side="right")) - 1, start + 1)
        stop = min(stop, n)
        lo, hi = int(offsets[start]), int(offsets[stop])
        nonempty = np.nonzero(counts[start:stop])[0]
        if hi > lo:
            starts = offsets[start:stop][nonempty] - lo
            block, v = mixed[lo:hi], np.empty(hi - lo, dtype=np.uint32)
            out = np.empty((p, nonempty.size), dtype=np.uint32)
            for k in range(p):
                np.multiply(block, a[k], out=v)
                np.add(v, b[k], out=v)
                out[k] = np.minimum.reduceat(v, starts)
            sig[start + nonempty] = out.T
        start = stop
    return sig


def band_keys(sig: np.ndarray, params: LSHParams) -> np.ndarray:
    """One 64-bit key per (doc, band): equal keys mean equal band rows (collisions of
    distinct rows happen with probability ~2^-64)."""
    n = sig.shape[0]
    rows = sig[:, : params.num_perm].reshape(n, params.bands, params.rows).astype(np.uint64)
    key = np.zeros((n, params.bands), dtype=np.uint64)
    for j in range(params.rows):
        key = key * np.uint64(0x100000001B3) + rows[:, :, j]
    salt = np.arange(params.bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return mix64(key ^ salt[None, :])


def signatures_from_ids(
    flat: np.ndarray, lengths: np.ndarray, params: LSHParams, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """MinHash signatures from word ids laid out doc after doc (see `WordIds.flat`).
    Shingles are word n-grams; a doc shorter than n words is one shingle of all its
    words; an empty doc gets the all-max (empty) signature."""
    n = params.ngram
    h64, counts = ngram_hashes(flat, lengths, n)
    short = np.nonzero((lengths > 0) & (lengths < n))[0]
    if short.size:  # whole-text shingle for short docs, spliced in doc order
        pieces, new_counts, at = [], counts.copy(), 0
        offsets = np.concatenate([[0], np.cumsum(counts)])
        word_at = np.concatenate([[0], np.cumsum(lengths)])
        for i in short:
            pieces.append(h64[at : offsets[i]])
            ids = flat[word_at[i] : word_at[i + 1]]
            pieces.append(ngram_hashes(ids, np.array([ids.size]), int(ids.size))[0])
            new_counts[i] = 1
            at = int(offsets[i])
        pieces.append(h64[at:])
        h64, counts = np.concatenate(pieces), new_counts
    h32 = (h64 ^ (h64 >> np.uint64(32))).astype(np.uint32)
    return minhash_from_hashes(h32, counts, a, b)


class _Runs:
    """Sorted runs of (band key -> kept ordinal), merged log-structured: lookups are
    binary searches, inserts are appends, memory is 16 bytes per key."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.owners: list[np.ndarray] = []

    def lookup(self, q: np.ndarray) -> np.ndarray:
        found = np.full(q.shape, -1, dtype=np.int64)
        for rk, ro in zip(self.keys, self.owners, strict=True):
            pos = np.minimum(np.searchsorted(rk, q), rk.size - 1)
            hit = rk[pos] == q
            own = np.where(hit, ro[pos], -1)
            better = hit & ((found < 0) | (own < found))
            found[better] = own[better]
        return found

    def add(self, keys: np.ndarray, owners: np.ndarray) -> None:
        if not keys.size:
            return
        order = np.argsort(keys, kind="stable")
        self.keys.append(keys[order])
        self.owners.append(owners[order])
        while len(self.keys) > 1 and self.keys[-2].size <= 2 * self.keys[-1].size:
            k = np.concatenate(self.keys[-2:])
            o = np.concatenate(self.owners[-2:])
            order = np.argsort(k, kind="stable")
            del self.keys[-2:], self.owners[-2:]
            self.keys.append(k[order])
            self.owners.append(o[order])

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + o.nbytes for k, o in zip(self.keys, self.owners, strict=True))


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Why a document was dropped: `kind` exact|near, `of` the kept document's key, and
    `tag` what that kept document was (real, anchor, synthetic, ...)."""

    kind: str
    of: Any
    tag: str


class Deduper:
    """Keep-first exact + near dedup over a stream of texts, in batches (module docstring).

    `check(texts, keys, tags)` returns, per text, None (kept, and now indexed) or the
    Duplicate it is. Feed the records to keep first, first."""

    def __init__(
        self,
        *,
        exact: bool = True,
        near: bool = True,
        threshold: float | None = None,
        params: LSHParams | None = None,
    ) -> None:
        if params is None:
            params = LSHParams() if threshold is None else LSHParams.for_threshold(threshold)
        self.params, self.exact, self.near = params, exact, near
        self._a, self._b = permutations(params.num_perm, params.seed)
        self._exact: dict[int, int] = {}
        self._runs = _Runs()
        self.kept_keys: list[Any] = []
        self.kept_tags: list[str] = []

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """MinHash signatures of texts (word n-gram shingles; a text shorter than n words
        is one shingle of all its words)."""
        flat, lengths = word_hashes(texts)
        return signatures_from_ids(flat, lengths, self.params, self._a, self._b)

    def check(
        self, texts: Sequence[str], keys: Sequence[Any], tags: Sequence[str] | str = "kept"
    ) -> list[Duplicate | None]:
        tag_list = [tags] * len(texts) if isinstance(tags, str) else list(tags)
        flat, lengths = word_hashes(texts)
        hashes: list[int] = doc_hashes(flat, lengths).tolist() if self.exact else []
        out: list[Duplicate | None] = [None] * len(texts)
        first_copy: dict[int, int] = {}  # exact hash -> first index in this batch
        copies: list[tuple[int, int]] = []  # (index, index of its first copy in batch)
        if self.exact:
            todo: list[int] = []
            for i, h in enumerate(hashes):
                owner = self._exact.get(h)
                if owner is not None:
                    out[i] = Duplicate("exact", self.kept_keys[owner], self.kept_tags[owner])
                elif h in first_copy:
                    copies.append((i, first_copy[h]))
                else:
                    first_copy[h] = i
                    todo.append(i)
        else:
            todo = list(range(len(texts)))
        band: np.ndarray | None = None
        if self.near and todo:
            if len(todo) < len(texts):
                pick = np.zeros(len(texts), dtype=bool)
                pick[todo] = True
                flat, lengths = flat[np.repeat(pick, lengths)], lengths[pick]
            band, ext, inner = self._near(flat, lengths)
            for j, i in enumerate(todo):
                if ext[j] >= 0:
                    o = int(ext[j])
                    out[i] = Duplicate("near", self.kept_keys[o], self.kept_tags[o])
                elif inner[j] >= 0:
                    rep = todo[int(inner[j])]
                    out[i] = Duplicate("near", keys[rep], tag_list[rep])
        for i, j in copies:  # a copy of an earlier doc in this batch shares its fate
            out[i] = out[j] or Duplicate("exact", keys[j], tag_list[j])
        new_rows: list[int] = []
        new_owners: list[int] = []
        for j, i in enumerate(todo):
            if out[i] is not None:
                continue
            ordinal = len(self.kept_keys)
            self.kept_keys.append(keys[i])
            self.kept_tags.append(tag_list[i])
            if self.exact:
                self._exact[hashes[i]] = ordinal
            if band is not None and lengths[j]:
                new_rows.append(j)
                new_owners.append(ordinal)
        if band is not None and new_rows:
            stacked = band[new_rows]
            owners = np.repeat(np.array(new_owners, dtype=np.int64), stacked.shape[1])
            self._runs.add(stacked.ravel(), owners)
        return out

    # -- near-duplicate pass ------------------------------------------------------------
    def _near(
        self, flat: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Band keys, the kept ordinal each doc collides with (-1: none), and the earlier
        doc of this batch it collides with (-1: none)."""
        sig = signatures_from_ids(flat, lengths, self.params, self._a, self._b)
        keys = band_keys(sig, self.params)
        has = lengths > 0
        hit = self._runs.lookup(keys)
        big = np.iinfo(np.int64).max
        owner = np.where(hit >= 0, hit, big).min(axis=1)
        ext = np.where(has & (owner < big), owner, -1)
        inner = np.full(len(lengths), -1, dtype=np.int64)
        cand = np.nonzero(has & (ext < 0))[0]
        if cand.size > 1:
            self._batch_dups(cand, keys, inner)
        return keys, ext, inner

    @staticmethod
    def _batch_dups(cand: np.ndarray, keys: np.ndarray, inner: np.ndarray) -> None:
        """Collisions among this batch's own new documents, resolved in order: a doc is a
        duplicate of the first *kept* earlier doc it shares a band with."""
        b = keys.shape[1]
        flat = keys[cand].ravel()
        doc = np.repeat(cand, b)
        order = np.argsort(flat, kind="stable")
        sk, sd = flat[order], doc[order]
        gid = np.cumsum(np.concatenate([[True], sk[1:] != sk[:-1]])) - 1
        multi = np.bincount(gid)[gid] > 1
        if not multi.any():
            return
        groups: dict[int, list[int]] = {}
        for d, g in zip(sd[multi].tolist(), gid[multi].tolist(), strict=True):
            groups.setdefault(d, []).append(g)
        first_kept: dict[int, int] = {}
        for d in sorted(groups):
            reps = [first_kept[g] for g in groups[d] if g in first_kept]
            if reps:
                inner[d] = min(reps)
                continue
            for g in groups[d]:
                first_kept.setdefault(g, d)

    @property
    def index_bytes(self) -> int:
        """Memory held by the index (band runs + exact table), for the benchmark."""
        return self._runs.nbytes + len(self._exact) * 100


def dedup_records(
    records: Iterable[Record],
    deduper: Deduper,
    *,
    text: Callable[[Record], str],
    tag: Callable[[Record], str] = lambda r: str(r.meta.get("source", "kept")),
    batch_size: int = 2048,
) -> Iterator[tuple[Record, Duplicate | None]]:
    """Each record with None (kept) or its Duplicate, in input order, `batch_size` records
    in memory at a time."""
    batch: list[Record] = []
    for rec in records:
        batch.append(rec)
        if len(batch) >= batch_size:
            yield from _flush(batch, deduper, text, tag)
            batch = []
    if batch:
        yield from _flush(batch, deduper, text, tag)


def _flush(
    batch: list[Record],
    deduper: Deduper,
    text: Callable[[Record], str],
    tag: Callable[[Record], str],
) -> Iterator[tuple[Record, Duplicate | None]]:
    verdicts = deduper.check(
        [text(r) for r in batch], [r.id for r in batch], [tag(r) for r in batch]
    )
    yield from zip(batch, verdicts, strict=True)
