"""Benchmark decontamination: no training record may contain an evaluation item.

Synthetic data can regurgitate benchmark items the generator memorised, and real data
can contain them too, so both are checked after generation and verification. Matching
is on lowercased word n-grams (punctuation ignored):

* a record of >= `short_tokens` words (default 100) is contaminated by any 13-gram of an
  eval item, or by the whole of an eval item of 8-12 words (a 13-gram is longer than
  such an item);
* a shorter record (a QA pair, an instruction) is contaminated by any 8-gram, because a
  13-gram is longer than most of the item.

Mode `gpt3` (default) follows GPT-3 / lm-eval-harness `janitor.py`: cut each matching
region plus 200 characters each side, keep the fragments of >= 200 characters as
separate records, and drop the record when it would be cut more than 10 times (overlapping
matches are one region). Short records, and records whose text is not one string field,
are dropped rather than cut. Mode `drop` drops every contaminated record. Hits are
counted per eval set.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import ConfigError
from synth.files import jsonl_lines
from synth.records import Record, child_id
from synth.text.lexical import WordIds, doc_offsets, ngram_hashes, text_of

_WORD = re.compile(r"\w+")
_TEXT_KEYS = ("text", "content", "document", "body")


@dataclass(frozen=True, kw_only=True)
class DecontamConfig:
    n: int = 13
    short_n: int = 8
    short_tokens: int = 100
    mode: str = "gpt3"
    window: int = 200
    min_fragment: int = 200
    max_splits: int = 10

    def __post_init__(self) -> None:
        if self.mode not in ("gpt3", "drop"):
            raise ConfigError(
                "unknown decontamination mode",
                path="decontam.mode",
                expected="'gpt3' (cut a window around each match) or 'drop'",
                found=self.mode,
            )
        if not 1 <= self.short_n <= self.n:
            raise ConfigError(
                "decontamination n-gram sizes are inconsistent",
                path="decontam.short_n",
                expected=f"1 <= short_n <= n ({self.n})",
                found=self.short_n,
            )


def _sorted(values: Iterable[np.ndarray]) -> np.ndarray:
    arrs = [v for v in values if v.size]
    return np.unique(np.concatenate(arrs)) if arrs else np.zeros(0, dtype=np.uint64)


def _member(sorted_arr: np.ndarray, q: np.ndarray) -> np.ndarray:
    if not sorted_arr.size or not q.size:
        return np.zeros(q.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_arr, q), sorted_arr.size - 1)
    return np.asarray(sorted_arr[pos] == q)


@dataclass
class EvalSet:
    """One evaluation set's n-gram index."""

    name: str
    items: int = 0
    skipped_short: int = 0
    long: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    short: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    whole: dict[int, np.ndarray] = field(default_factory=dict)


class EvalIndex:
    """The n-grams of every eval set, built once from files."""

    def __init__(self, sets: list[EvalSet], config: DecontamConfig, words: WordIds) -> None:
        self.sets, self.config, self.words = sets, config, words

    @classmethod
    def from_texts(
        cls, named: Mapping[str, Sequence[str]], config: DecontamConfig | None = None
    ) -> EvalIndex:
        config = config or DecontamConfig()
        wid = WordIds()
        sets = []
        for name, texts in named.items():
            es = EvalSet(name)
            toks = [[m.group().lower() for m in _WORD.finditer(t)] for t in texts]
            toks = [t for t in toks if t]
            es.items = len(toks)
            usable = [t for t in toks if len(t) >= config.short_n]
            es.skipped_short = len(toks) - len(usable)
            flat, lengths = wid.flat(usable)
            es.long = _sorted([ngram_hashes(flat, lengths, config.n)[0]])
            es.short = _sorted([ngram_hashes(flat, lengths, config.short_n)[0]])
            by_len: dict[int, list[list[str]]] = {}
            for t in usable:
                if len(t) < config.n:
                    by_len.setdefault(len(t), []).append(t)
            for length, group in by_len.items():
                f, ls = wid.flat(group)
                es.whole[length] = _sorted([ngram_hashes(f, ls, length)[0]])
            sets.append(es)
        return cls(sets, config, wid)

    @classmethod
    def from_paths(
        cls, paths: Sequence[str | Path], config: DecontamConfig | None = None
    ) -> EvalIndex:
        """Each file is one eval set named by its stem (a folder: each file in it). JSONL
        items are the text of each object (question, answer, choices ...); a text file
        has one item per non-empty line."""
        named: dict[str, list[str]] = {}
        for p in map(Path, paths):
            files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
            if not p.exists():
                raise ConfigError(
                    "eval set not found",
                    file=str(p),
                    expected="a JSONL or text file, or a folder of them",
                    fix="check the --eval-sets path",
                )
            for f in files:
                named.setdefault(f.stem, []).extend(_eval_items(f))
        return cls.from_texts(named, config)


def _eval_items(f: Path) -> list[str]:
    if f.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return [text_of(obj) for _, obj in jsonl_lines(f, what="one eval item per line")]
    text = f.read_text(encoding="utf-8", errors="replace")
    return [line for line in text.splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class Decontamination:
    """What decontamination did to one record: `records` to keep (the record itself,
    its fragments, or none) and the eval sets it matched."""

    records: list[Record]
    sets: tuple[str, ...] = ()
    action: str = "clean"  # clean | cut | dropped


class Decontaminator:
    """Checks records against an EvalIndex, batch-wise; counts hits per eval set."""

    def __init__(self, index: EvalIndex) -> None:
        self.index = index
        self.hits: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()

    def process(self, records: Sequence[Record]) -> list[Decontamination]:
        cfg, wid = self.index.config, self.index.words
        texts = [text_of(r.data) for r in records]
        spans = [[(m.start(), m.end()) for m in _WORD.finditer(t)] for t in texts]
        toks = [[t[s:e].lower() for s, e in sp] for t, sp in zip(texts, spans, strict=True)]
        flat, lengths = wid.flat(toks)
        is_short = lengths < cfg.short_tokens
        # Per record: list of (first word, last word + 1, set name) matches.
        found: list[list[tuple[int, int, str]]] = [[] for _ in records]
        for n, pick, applies in self._plans(is_short):
            grams, counts = ngram_hashes(flat, lengths, n)
            if not grams.size:
                continue
            off = doc_offsets(counts)
            doc_of = np.repeat(np.arange(len(records)), counts)
            relevant = applies[doc_of]
            for es in self.index.sets:
                table = pick(es)
                if table is None:
                    continue
                for g in np.nonzero(relevant & _member(table, grams))[0]:
                    d = int(doc_of[g])
                    start = int(g - off[d])
                    found[d].append((start, start + n, es.name))
        return [
            self._outcome(r, t, sp, bool(s), f)
            for r, t, sp, s, f in zip(records, texts, spans, is_short, found, strict=True)
        ]

    def _plans(self, is_short: np.ndarray) -> list[tuple[int, Any, np.ndarray]]:
        """(n, which table of an EvalSet, which records) for each n-gram pass."""
        cfg = self.index.config
        plans: list[tuple[int, Any, np.ndarray]] = []
        if is_short.any():
            plans.append((cfg.short_n, lambda es: es.short, is_short))
        if (~is_short).any():
            plans.append((cfg.n, lambda es: es.long, ~is_short))
            for k in sorted({k for es in self.index.sets for k in es.whole}):
                plans.append((k, lambda es, k=k: es.whole.get(k), ~is_short))
        return plans

    def _outcome(
        self,
        rec: Record,
        text: str,
        spans: list[tuple[int, int]],
        short: bool,
        found: list[tuple[int, int, str]],
    ) -> Decontamination:
        if not found:
            return Decontamination([rec])
        sets = tuple(sorted({s for _, _, s in found}))
        for s in sets:
            self.hits[s] += 1
        cfg = self.index.config
        key = next((k for k in _TEXT_KEYS if isinstance(rec.data.get(k), str)), None)
        if cfg.mode == "drop" or short or key is None:
            self.actions["dropped"] += 1
            return Decontamination([], sets, "dropped")
        regions = _regions(
            [(spans[a][0], spans[b - 1][1]) for a, b, _ in sorted(found)], cfg.window, len(text)
        )
        if len(regions) > cfg.max_splits:
            self.actions["dropped_too_dirty"] += 1
            return Decontamination([], sets, "dropped")
        pieces, at = [], 0
        for lo, hi in regions:
            pieces.append(text[at:lo])
            at = hi
        pieces.append(text[at:])
        keep = [p.strip() for p in pieces if len(p.strip()) >= cfg.min_fragment]
        self.actions["cut" if keep else "dropped_no_fragment"] += 1
        out = []
        for k, piece in enumerate(keep):
            meta = {
                **rec.meta,
                "parents": [rec.id],
                "decontam": {"eval_sets": list(sets), "fragment": k, "of": len(keep)},
            }
            out.append(Record(child_id(rec, "decontam", k), {**rec.data, key: piece}, meta))
        return Decontamination(out, sets, "cut" if out else "dropped")


def _regions(matches: list[tuple[int, int]], window: int, size: int) -> list[tuple[int, int]]:
    """Character ranges to remove: each match widened by `window`, overlaps merged."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(matches):
        lo, hi = max(0, s - window), min(size, e + window)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out
