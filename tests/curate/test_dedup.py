"""Dedup: datasketch-identical MinHash, the S-curve at the threshold, keep-real, idempotence."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.curate.dedup import Deduper, LSHParams, minhash_from_hashes, permutations

SYNTH = [sys.executable, "-m", "synth.cli"]
VOCAB = [f"v{i}" for i in range(20000)]


def _shingles(text: str, n: int = 5) -> set[str]:
    w = text.split()
    return {" ".join(w[i : i + n]) for i in range(len(w) - n + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


def _pair(rng: random.Random, target: float, length: int = 300) -> tuple[str, str]:
    """Two documents whose word 5-gram Jaccard is about `target`: the second one has
    evenly spread words replaced (each replacement breaks 5 shingles)."""
    a = [rng.choice(VOCAB) for _ in range(length)]
    b = list(a)
    shingles = length - 4
    # J = (S - 5k) / (S + 5k)  =>  k = S (1 - J) / (5 (1 + J))
    k = round(shingles * (1 - target) / (5 * (1 + target)))
    for pos in np.linspace(2, length - 3, k).astype(int):
        b[pos] = rng.choice(VOCAB)
    return " ".join(a), " ".join(b)


def test_signatures_equal_datasketch_for_the_same_shingle_hashes() -> None:
    a, b = permutations(112, 1)
    ref = MinHash(num_perm=112, seed=1)
    assert (ref.permutations[0] == a).all() and (ref.permutations[1] == b).all()
    hashes = np.random.default_rng(3).integers(0, 2**32, size=80, dtype=np.uint64)
    ds = MinHash(num_perm=112, seed=1, hashfunc=lambda x: x)
    ds.update_batch([int(h) for h in hashes])
    ours = minhash_from_hashes(hashes.astype(np.uint32), np.array([80]), a, b)
    assert (ours[0] == ds.hashvalues).all()


def test_bands_and_rows_follow_the_threshold() -> None:
    p = LSHParams.for_threshold(0.75)
    assert (p.bands, p.rows) == (14, 8)
    assert 0.75 < p.probability(0.75) < 0.8 and p.probability(0.9) > 0.999
    assert p.probability(0.5) < 0.06
    strict = LSHParams.for_threshold(0.9)
    assert strict.probability(0.9) >= 0.75 and strict.probability(0.7) < 0.1


def test_s_curve_merges_a_09_pair_and_keeps_a_05_pair() -> None:
    rng = random.Random(11)
    near, far = _pair(rng, 0.9), _pair(rng, 0.5)
    assert 0.85 < _jaccard(*near) < 0.95 and 0.45 < _jaccard(*far) < 0.55
    dd = Deduper()
    out = dd.check([near[0], near[1], far[0], far[1]], ["n0", "n1", "f0", "f1"])
    assert out[0] is None and out[1] is not None and out[1].kind == "near" and out[1].of == "n0"
    assert out[2] is None and out[3] is None
    # and as rates over many pairs, the curve the docstring promises
    pairs9 = [_pair(rng, 0.9, 120) for _ in range(60)]
    pairs5 = [_pair(rng, 0.5, 120) for _ in range(60)]
    merged9 = sum(Deduper().check(list(p), ["a", "b"])[1] is not None for p in pairs9)
    merged5 = sum(Deduper().check(list(p), ["a", "b"])[1] is not None for p in pairs5)
    assert merged9 >= 57 and merged5 <= 8


def test_exact_dedup_ignores_case_punctuation_and_spacing() -> None:
    dd = Deduper(near=False)
    out = dd.check(["Hello, World!", "hello   world", "hello there"], [1, 2, 3])
    assert out[1] is not None and out[1].kind == "exact" and out[1].of == 1 and out[2] is None


def test_keeps_the_record_fed_first_and_reports_its_tag() -> None:
    rng = random.Random(5)
    real, syn = _pair(rng, 0.92)
    dd = Deduper()
    dd.check([real], ["r1"], "real")
    dup = dd.check([syn, real.upper()], ["s1", "s2"], "synthetic")
    assert [d.tag if d else None for d in dup] == ["real", "real"]
    assert [d.kind if d else None for d in dup] == ["near", "exact"]


texts = st.lists(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=0, max_size=12).map(
        " ".join
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(texts, st.integers(1, 7))
def test_dedup_is_idempotent_and_independent_of_batching(docs: list[str], batch: int) -> None:
    def run(items: list[str], size: int) -> list[str]:
        dd = Deduper()
        kept = []
        for i in range(0, len(items), size):
            chunk = items[i : i + size]
            kept += [t for t, d in zip(chunk, dd.check(chunk, list(range(len(chunk)))),
                                       strict=True) if d is None]  # fmt: skip
        return kept

    once = run(docs, len(docs) or 1)
    assert run(docs, batch) == once
    assert run(once, batch) == once


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYNTH, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_cli_dedup_keeps_real_records_and_writes_lines_unchanged(tmp_path: Path) -> None:
    rng = random.Random(2)
    a, b = _pair(rng, 0.9)
    lines = [
        {"id": "s1", "data": {"text": a}, "meta": {"source": "synthetic"}},
        {"id": "u1", "data": {"text": "a unique line of text here"}, "meta": {}},
        {"id": "r1", "data": {"text": b}, "meta": {"source": "real"}},
        {"id": "s2", "data": {"text": a + " "}, "meta": {}},
    ]
    src = tmp_path / "data.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = _cli("dedup", str(src), "--near", "--threshold", "0.8", "--out", "deduped.jsonl",
               "--dups", "dups.jsonl", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = [json.loads(x)["id"] for x in (tmp_path / "deduped.jsonl").read_text().splitlines()]
    assert kept == ["u1", "r1"]
    assert "kept 2 of 4" in res.stdout
    dups = [json.loads(x) for x in (tmp_path / "dups.jsonl").read_text().splitlines()]
    assert {d["dup_of"] for d in dups} == {"r1"}


def test_cli_dedup_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": broken\n')
    res = _cli("dedup", "bad.jsonl", "--out", "o.jsonl", cwd=tmp_path)
    assert res.returncode == 2
    assert "bad.jsonl: line 2: malformed JSON" in res.stderr and "Traceback" not in res.stderr
    missing = _cli("dedup", "nope.jsonl", "--out", "o.jsonl", cwd=tmp_path)
    assert missing.returncode == 2 and "input not found" in missing.stderr


def test_dedup_step_drops_duplicates_in_the_stream(tmp_path: Path) -> None:
    import asyncio

    from synth.context import Context
    from synth.records import Record
    from synth.registry import lookup

    rng = random.Random(9)
    a, b = _pair(rng, 0.92)
    (tmp_path / "seen.jsonl").write_text(json.dumps({"text": "already in the dataset ok"}) + "\n")

    async def source():  # type: ignore[no-untyped-def]
        for i, t in enumerate([a, "Already in the dataset, OK!", b, a.upper(), "fresh words"]):
            yield Record(f"r{i}", {"text": t})

    async def main() -> tuple[list[str], dict[str, int]]:
        run = lookup("step", "dedup").factory(against=["seen.jsonl"])
        ctx = Context(seed=1, base_dir=tmp_path)
        return [r.id async for r in run(source(), ctx)], dict(ctx.stats)

    kept, stats = asyncio.run(main())
    assert kept == ["r0", "r4"]
    assert stats == {"dedup_exact": 2, "dedup_near": 1}
