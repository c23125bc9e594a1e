"""`make collapse-demo`: model collapse under `replace`, and none under synth's mixer.

A bigram language model is fitted on real English (The Devil's Dictionary, public domain,
bundled) and then refitted, generation after generation, on data that includes its own
samples (the replace / accumulate experiment of the collapse literature, on real text
instead of a synthetic Zipf language):

    replace          fit on n fresh samples of the previous model only (Shumailov)
    accumulate       fit on all real + every synthetic batch so far (Gerstgrasser)
    mixer            the training set is whatever `synth.curate.mixer.mix` builds from the real
                     pool and every synthetic batch so far, with its defaults (accumulate,
                     <= 1x synthetic, floor 0.5, lineage depth <= 1, dedup, monitor gate)
    mixer-any-depth  the same with the lineage-depth limit lifted, so every generation's
                     samples are eligible and only the real floor holds the line

Per generation it prints distinct-2 of the model's samples, rare-bigram recall (share of
the real training text's rare bigrams, count <= 2, that the samples contain) and the
cross-entropy of the model on held-out real sentences; runs the collapse monitor on each
generation's samples against the held-out real anchor (trend history per regime); draws
the curves to `collapse.svg`; and repeats the Gaussian toy (refit mean and covariance on
own samples; det(cov)^(1/d) is the diversity). The bigram model samples from its fitted
counts; cross-entropy interpolates them with an add-one unigram (lambda 0.7) so unseen
bigrams cost finite bits.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from synth.curate.diversity import Corpus
from synth.text.lexical import words

REGIMES = ("replace", "accumulate", "mixer", "mixer-any-depth")
BOS, EOS = 0, 1


def load_corpus() -> list[str]:
    """Sentences of The Devil's Dictionary (4 to 60 words each)."""
    raw = resources.files("synth").joinpath("data", "devils-dictionary.txt.gz").read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    out = []
    for para in re.split(r"\n\s*\n", text):
        flat = " ".join(para.split())
        for sent in re.split(r"(?<=[.!?])\s+", flat):
            n = len(words(sent))
            if 4 <= n <= 60:
                out.append(sent)
    return out


class Vocab:
    def __init__(self, sentences: list[str]) -> None:
        self.index: dict[str, int] = {"<s>": BOS, "</s>": EOS}
        for s in sentences:
            for w in words(s):
                self.index.setdefault(w, len(self.index))
        self.words = list(self.index)

    def encode(self, sentences: list[str]) -> list[np.ndarray]:
        return [np.array([self.index[w] for w in words(s)], dtype=np.int64) for s in sentences]

    def decode(self, sent: np.ndarray) -> str:
        return " ".join(self.words[i] for i in sent.tolist())


@dataclass
class Bigram:
    """MLE bigram counts in CSR form (rows = previous token), with <s> and </s>."""

    size: int
    keys: np.ndarray  # sorted prev * size + next
    counts: np.ndarray
    row_total: np.ndarray
    unigram: np.ndarray  # add-one unigram probabilities

    @classmethod
    def fit(cls, sents: list[np.ndarray], size: int) -> Bigram:
        seq = np.concatenate([np.concatenate([[BOS], s, [EOS]]) for s in sents])
        prev, nxt = seq[:-1], seq[1:]
        ok = prev != EOS  # no transition out of </s> into the next sentence's <s>
        keys, counts = np.unique(prev[ok] * size + nxt[ok], return_counts=True)
        row_total = np.bincount(keys // size, weights=counts, minlength=size)
        uni = np.bincount(seq, minlength=size).astype(np.float64) + 1.0
        return cls(size, keys, counts, row_total, uni / uni.sum())

    def sample(
        self, n: int, rng: np.random.Generator, min_len: int = 4, max_len: int = 60
    ) -> list[np.ndarray]:
        """n sentences of min_len..max_len words (the corpus's own length limits)."""
        out: list[np.ndarray] = []
        while len(out) < n:
            out += [s for s in self._draw(n, rng, max_len + 1) if min_len <= len(s) <= max_len]
        return out[:n]

    def _draw(self, n: int, rng: np.random.Generator, max_len: int) -> list[np.ndarray]:
        rows = self.keys // self.size
        csum = np.cumsum(self.counts)
        first = np.searchsorted(rows, rows, side="left")  # start of each row's block
        before = np.where(first > 0, csum[first - 1], 0)
        # cumulative share within each row, offset by the row id: one sorted array
        glob = rows + (csum - before) / self.row_total[rows]
        cur = np.full(n, BOS)
        out = np.full((n, max_len), -1, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for t in range(max_len):
            u = rng.random(n) * 0.999999
            pos = np.searchsorted(glob, cur + u, side="right")
            nxt = self.keys[np.minimum(pos, len(glob) - 1)] % self.size
            nxt = np.where(alive, nxt, EOS)
            out[:, t] = np.where(alive & (nxt != EOS), nxt, -1)
            alive &= nxt != EOS
            cur = nxt
            if not alive.any():
                break
        return [r[r >= 0] for r in out if (r >= 0).any()]

    def cross_entropy(self, sents: list[np.ndarray], lam: float = 0.7) -> float:
        """Bits per token of held-out sentences (interpolated with the unigram)."""
        seq = np.concatenate([np.concatenate([[BOS], s, [EOS]]) for s in sents])
        prev, nxt = seq[:-1], seq[1:]
        ok = prev != EOS
        prev, nxt = prev[ok], nxt[ok]
        q = prev * self.size + nxt
        pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        c = np.where(self.keys[pos] == q, self.counts[pos], 0)
        tot = self.row_total[prev]
        p_bi = np.where(tot > 0, c / np.maximum(tot, 1), 0.0)
        p = np.where(tot > 0, lam * p_bi + (1 - lam) * self.unigram[nxt], self.unigram[nxt])
        return float(-np.log2(p).mean())


def _bigram_set(sents: list[np.ndarray]) -> np.ndarray:
    seq = [s[i] * 1_000_003 + s[i + 1] for s in sents for i in range(len(s) - 1)]
    return np.array(seq, dtype=np.int64)


def _metrics(sample: list[np.ndarray], rare: np.ndarray) -> dict[str, float]:
    lengths = np.array([len(s) for s in sample], dtype=np.int64)
    flat = np.concatenate(sample).astype(np.uint64) if sample else np.zeros(0, dtype=np.uint64)
    grams, _ = Corpus([], flat, lengths).ngrams(2)
    distinct2 = np.unique(grams).size / max(grams.size, 1)
    recall = float(np.isin(rare, _bigram_set(sample)).mean()) if rare.size else 0.0
    return {"distinct_2": distinct2, "rare_recall": recall}


def _mix_training(
    work: Path,
    real: list[str],
    held: list[str],
    batches: list[tuple[list[str], int]],
    any_depth: bool,
    seed: int,
) -> tuple[list[str], dict[str, Any]]:
    """Write the real pool and synthetic batches as files and let the real mixer choose.
    The held-out real sentences are its anchor (the monitor gate's reference)."""
    from synth.curate.mixer import MixConfig, mix
    from synth.records import Record, write_jsonl

    real_file, held_file = work / "real.jsonl", work / "anchor.jsonl"
    if not real_file.exists():
        write_jsonl(real_file, (Record(f"r{i}", {"text": t}, {}) for i, t in enumerate(real)))
        write_jsonl(held_file, (Record(f"h{i}", {"text": t}, {}) for i, t in enumerate(held)))
    syn_dirs = []
    for g, (texts, depth) in enumerate(batches, 1):
        d = work / f"gen{g:02d}"
        if not d.exists():
            d.mkdir()
            write_jsonl(
                d / "data.jsonl",
                (Record(f"g{g}-{i}", {"text": t}, {"generation": g, "lineage_depth": depth,
                                                   "recipe": "collapse-demo"})
                 for i, t in enumerate(texts)),
            )  # fmt: skip
        syn_dirs.append(d)
    config = MixConfig(seed=seed, max_lineage_depth=10**6 if any_depth else 1)
    report = mix([real_file], syn_dirs, out=work / "mixed", config=config, anchor=held_file,
                 monitor_root=work / "state")  # fmt: skip
    texts = []
    for shard in sorted((work / "mixed").glob("shard-*.jsonl")):
        for line in shard.read_text(encoding="utf-8").splitlines():
            texts.append(json.loads(line)["data"]["text"])
    return texts, report


def run_regime(
    regime: str,
    vocab: Vocab,
    real: list[str],
    held: list[str],
    *,
    generations: int,
    seed: int,
    work: Path,
    monitor: bool = True,
) -> list[dict[str, Any]]:
    from synth.curate.monitor import History, MonitorConfig
    from synth.curate.monitor import monitor as run_monitor

    rng = np.random.default_rng(seed)
    real_ids = vocab.encode(real)
    held_ids = vocab.encode(held)
    grams, counts = np.unique(_bigram_set(real_ids), return_counts=True)
    rare = grams[counts <= 2]
    n = len(real)
    model = Bigram.fit(real_ids, len(vocab.words))
    depth_of_model = 0  # 0: trained on real only
    synthetic: list[list[np.ndarray]] = []
    batches: list[tuple[list[str], int]] = []
    work.mkdir(parents=True, exist_ok=True)
    history = History(work / "state") if monitor else None
    mcfg = MonitorConfig(sample_docs=n, baseline_draws=8, self_bleu_sample=300, seed=seed)
    rows = []
    for g in range(1, generations + 1):
        sample = model.sample(n, rng)
        texts = [vocab.decode(s) for s in sample]
        row: dict[str, Any] = {"generation": g, **_metrics(sample, rare)}
        row["cross_entropy"] = model.cross_entropy(held_ids)
        if history is not None:
            rep = run_monitor(texts, held, config=mcfg, history=history, series=regime,
                              generation=g, cache=work / "state")  # fmt: skip
            row["monitor"] = rep["status"]
            row["monitor_reasons"] = rep["reasons"][:3]
        synthetic.append(sample)
        batches.append((texts, depth_of_model + 1))
        if regime == "replace":
            train = sample
            depth_of_model += 1
        elif regime == "accumulate":
            train = real_ids + [s for b in synthetic for s in b]
            depth_of_model += 1
        else:
            any_depth = regime == "mixer-any-depth"
            mixed, report = _mix_training(work, real, held, batches, any_depth, seed)
            train = vocab.encode(mixed)
            row["mixed_real_fraction"] = report["real_fraction"]
            row["mixed_synthetic"] = report["counts"]["synthetic"]["selected"]
            used = [d for (t, d), b in zip(batches, report["inputs"]["synthetic"], strict=True)
                    if b.get("used")]  # fmt: skip
            depth_of_model = max(used, default=0)
        model = Bigram.fit(train, len(vocab.words))
        rows.append(row)
    return rows


def gaussian_toy(
    *, generations: int, n: int = 100, d: int = 10, seeds: int = 20, seed: int = 0
) -> dict[str, list[float]]:
    """det(cov)^(1/d) per generation (median over seeds) for replace, accumulate and
    real + 1x fresh synthetic (the mixer's defaults: floor 0.5)."""
    out: dict[str, list[list[float]]] = {"replace": [], "accumulate": [], "mixer": []}
    for s in range(seeds):
        rng = np.random.default_rng(seed * 1000 + s)
        real = rng.standard_normal((n, d))
        for regime in out:
            mu, cov = real.mean(0), np.cov(real.T)
            pool, series = [real], []
            for _ in range(generations):
                syn = rng.multivariate_normal(mu, cov, size=n)
                series.append(float(np.linalg.det(cov) ** (1 / d)))
                if regime == "replace":
                    train = syn
                elif regime == "accumulate":
                    pool.append(syn)
                    train = np.concatenate(pool)
                else:
                    train = np.concatenate([real, syn])
                mu, cov = train.mean(0), np.cov(train.T)
            out[regime].append(series)
    return {k: np.median(np.array(v), axis=0).tolist() for k, v in out.items()}


def draw(
    results: dict[str, list[dict[str, Any]]], gauss: dict[str, list[float]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("svg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5), layout="constrained")
    axes = fig.subplots(2, 2)
    panels = [("distinct_2", "distinct-2 of samples"), ("rare_recall", "rare-bigram recall"),
              ("cross_entropy", "held-out real cross-entropy (bits/token)")]  # fmt: skip
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        for regime, rows in results.items():
            ax.plot([r["generation"] for r in rows], [r[key] for r in rows], marker="o",
                    markersize=3, label=regime)  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    ax = axes.flat[3]
    for regime, series in gauss.items():
        ax.plot(range(1, len(series) + 1), series, marker="o", markersize=3, label=regime)
    ax.set_yscale("log")
    ax.set_title("Gaussian toy: det(cov)^(1/d)")
    ax.set_xlabel("generation")
    ax.legend(fontsize=7)
    fig.savefig(path, format="svg", metadata={"Date": None})


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        f"{'regime':<16}{'gen':>4}{'distinct-2':>12}{'rare-recall':>13}{'x-entropy':>11}  monitor"
    ]
    for regime, rows in results.items():
        for r in rows:
            lines.append(f"{regime:<16}{r['generation']:>4}{r['distinct_2']:>12.4f}"
                         f"{r['rare_recall']:>13.4f}{r['cross_entropy']:>11.3f}  "
                         f"{r.get('monitor', '-')}")  # fmt: skip
    return "\n".join(lines)


def verdict(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The claims the demo makes, checked on its own numbers."""

    def ratio(regime: str) -> float:
        rows = results[regime]
        return float(rows[-1]["distinct_2"] / rows[0]["distinct_2"])

    def flagged(regime: str) -> bool:
        return any(r.get("monitor") == "fail" for r in results[regime])

    out: dict[str, Any] = {f"{k}_distinct2_last_over_first": ratio(k) for k in results}
    monitored = all("monitor" in r for rows in results.values() for r in rows)
    if "replace" in results:
        out["replace_falls_by_more_than_half"] = ratio("replace") < 0.5
        if monitored:
            out["monitor_flags_replace"] = flagged("replace")
    if "mixer" in results:
        out["mixer_within_15pct"] = abs(ratio("mixer") - 1.0) <= 0.15
        if monitored:
            out["monitor_quiet_on_mixer"] = not flagged("mixer")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m synth.curate.collapse_demo", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", default="out/collapse-demo")
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    ap.add_argument("--no-monitor", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "work", ignore_errors=True)  # a fresh history for every demo run
    results = demo(generations=args.generations, seed=args.seed, regimes=args.regimes,
                   monitor=not args.no_monitor, work=out / "work")  # fmt: skip
    gauss = gaussian_toy(generations=max(args.generations, 10) * 3, seed=args.seed)
    print(table(results))
    print("\nGaussian toy, det(cov)^(1/d) at generations 1 / 10 / last:")
    for k, v in gauss.items():
        print(f"  {k:<12} {v[0]:.3f} / {v[9]:.3f} / {v[-1]:.4f}")
    checks = verdict(results)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in checks.items()))
    draw(results, gauss, out / "collapse.svg")
    (out / "results.json").write_text(json.dumps({"bigram": results, "gaussian": gauss,
                                                  "checks": checks}, indent=2) + "\n")  # fmt: skip
    print(f"\ncurves: {out / 'collapse.svg'}; numbers: {out / 'results.json'}")
    bad = [k for k, v in checks.items() if v is False]
    return 1 if bad else 0


def demo(
    *,
    generations: int = 10,
    seed: int = 0,
    regimes: Any = REGIMES,
    monitor: bool = True,
    work: Path | None = None,
    n_real: int | None = None,
) -> dict[str, list[dict[str, Any]]]:
    # One text form for real and generated sentences (lowercase words, no punctuation),
    # so compression and length compare like with like.
    sents = [" ".join(words(s)) for s in load_corpus()]
    order = np.random.default_rng(seed).permutation(len(sents))
    sents = [sents[i] for i in order]
    held = sents[: len(sents) // 4]
    real = sents[len(sents) // 4 :][:n_real]
    vocab = Vocab(sents)
    with tempfile.TemporaryDirectory() as tmp:
        base = work or Path(tmp)
        return {
            r: run_regime(
                r,
                vocab,
                real,
                held,
                generations=generations,
                seed=seed,
                work=base / r,
                monitor=monitor,
            )  # fmt: skip
            for r in regimes
        }


if __name__ == "__main__":
    sys.exit(main())
