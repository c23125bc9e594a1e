"""A synthetic Zipfian bigram language for the dedup, monitor and mixer tests (a healthy
vs a truncated generator), plus small file builders for the mixer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def language(vocab: int = 1000, seed: int = 0) -> np.ndarray:
    """Transition matrix: every word's successors follow Zipf(1.1) over a shuffled vocab."""
    rng = np.random.default_rng(seed)
    base = 1.0 / np.arange(1, vocab + 1) ** 1.1
    rows = np.stack([base[rng.permutation(vocab)] for _ in range(vocab)])
    return rows / rows.sum(1, keepdims=True)


def truncate(rows: np.ndarray, k: int = 5) -> np.ndarray:
    """The collapsed generator: each row keeps only its top-k successors."""
    out = np.zeros_like(rows)
    top = np.argsort(-rows, axis=1)[:, :k]
    np.put_along_axis(out, top, np.take_along_axis(rows, top, axis=1), axis=1)
    return out / out.sum(1, keepdims=True)


def sample(rows: np.ndarray, n_docs: int, length: int = 60, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(rows, axis=1)
    toks = np.empty((n_docs, length), dtype=np.int64)
    toks[:, 0] = rng.integers(0, len(rows), n_docs)
    for t in range(1, length):
        u = rng.random(n_docs)
        toks[:, t] = np.minimum((cdf[toks[:, t - 1]] < u[:, None]).sum(1), len(rows) - 1)
    return [" ".join(f"w{x}" for x in r) for r in toks]


def write_jsonl(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


def run_dir(path: Path, texts: list[str], *, recipe: str = "demo", prefix: str = "s",
            meta: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """A synth run directory as `synth run` leaves it (records passed their chain)."""
    recs = [{"id": f"{prefix}{i}", "data": {"text": t},
             "meta": {"verdicts": [{"verifier": "v", "ok": True}], **(meta or {})}}
            for i, t in enumerate(texts)]  # fmt: skip
    write_jsonl(path / "data.jsonl", recs)
    (path / "manifest.json").write_text(json.dumps({"recipe": {"name": recipe}}))
    return path


def read_shards(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted(out.glob("shard-*.jsonl"))
            for line in f.read_text(encoding="utf-8").splitlines()]  # fmt: skip
