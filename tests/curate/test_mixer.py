"""The mixer: never replace real data, the floor in every shard, anchor isolation,
determinism, provenance, dup_of_real, monitor gating, and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from collapse_fixtures import language, read_shards, run_dir, sample, truncate, write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.curate.ingest import read_real
from synth.curate.mixer import MixConfig, is_anchor, mix, mix_from_config
from synth.curate.shards import Item, plan
from synth.errors import ConfigError, SynthError

SYNTH = [sys.executable, "-m", "synth.cli"]
QUIET = {"monitor": False}


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture(scope="module")
def lang() -> np.ndarray:
    return language()


def _real(path: Path, texts: list[str]) -> Path:
    return write_jsonl(path, [{"text": t} for t in texts])


def _tokens(recs: list[dict], source: str) -> int:
    return sum(len(r["data"]["text"].split()) for r in recs if r["meta"]["source"] == source)


def test_never_replace_and_the_floor_holds_in_every_shard(lang: np.ndarray, tmp_path: Path) -> None:
    real_texts = sample(lang, 300, seed=1)
    real = _real(tmp_path / "real.jsonl", real_texts)
    syn = run_dir(tmp_path / "run1", sample(lang, 500, 40, seed=2))
    cfg = MixConfig(shard_records=80, **QUIET)
    report = mix([real], [syn], out=tmp_path / "m1", config=cfg)
    recs = read_shards(tmp_path / "m1")
    real_ids = {r.id for r in read_real(real) if not is_anchor(r.id, cfg.anchor_fraction)}
    assert {r["id"] for r in recs if r["meta"]["source"] == "real"} == real_ids
    assert len(report["shards"]) > 3
    for k in range(len(report["shards"])):
        shard = [r for r in recs if r["meta"]["shard"] == k]
        real_tok, syn_tok = _tokens(shard, "real"), _tokens(shard, "synthetic")
        assert real_tok / (real_tok + syn_tok) >= 0.5
        assert report["shards"][k]["real_tokens"] == real_tok
    assert 0 < _tokens(recs, "synthetic") <= _tokens(recs, "real")
    for r in recs:  # provenance on every output record
        assert r["meta"]["source"] in ("real", "synthetic") and "generation" in r["meta"]
        if r["meta"]["source"] == "synthetic":
            assert r["meta"]["recipe"] == "demo" and r["meta"]["generation"] == 1
    # the next manifest, from a grown pool, keeps every real id of the previous one
    grown = _real(tmp_path / "real2.jsonl", real_texts + sample(lang, 100, seed=3))
    mix([grown], [syn], out=tmp_path / "m2", config=cfg)
    again = {r["id"] for r in read_shards(tmp_path / "m2") if r["meta"]["source"] == "real"}
    assert real_ids <= again


def test_anchor_isolation_and_dup_of_real(lang: np.ndarray, tmp_path: Path) -> None:
    texts = sample(lang, 300, seed=4)
    cfg = MixConfig(anchor_fraction=0.1, **QUIET)
    recs = list(read_real(_real(tmp_path / "tmp.jsonl", texts)))
    anchor_text = next(t for r, t in zip(recs, texts, strict=True) if is_anchor(r.id, 0.1))
    normal_text = next(t for r, t in zip(recs, texts, strict=True) if not is_anchor(r.id, 0.1))
    words = anchor_text.split()
    near_anchor = " ".join(words[:-1] + ["zzz"])  # a real near-copy of an anchor record
    real = _real(tmp_path / "real.jsonl", [*texts, near_anchor])
    syn_texts = [anchor_text, normal_text.upper(), " ".join(normal_text.split()[:-1]) + " qq",
                 *sample(lang, 100, seed=5)]  # fmt: skip
    syn = run_dir(tmp_path / "run", syn_texts)
    report = mix([real], [syn], out=tmp_path / "out", config=cfg)
    out = read_shards(tmp_path / "out")
    out_texts = {r["data"]["text"] for r in out}
    anchors = [json.loads(x) for x in (tmp_path / "out" / "anchor.jsonl").read_text().splitlines()]
    assert anchors and not ({a["id"] for a in anchors} & {r["id"] for r in out})
    assert anchor_text not in out_texts and near_anchor not in out_texts
    assert report["removed"]["real"]["dup_of_anchor_near"] == 1
    syn_removed = report["removed"]["synthetic"]
    assert syn_removed["dup_of_anchor_exact"] == 1
    assert syn_removed["dup_of_real_exact"] == 1 and syn_removed["dup_of_real_near"] == 1
    assert report["counts"]["real"]["anchor"] == len(anchors)


def test_same_seed_same_bytes_other_seed_only_moves_synthetic(
    lang: np.ndarray, tmp_path: Path
) -> None:
    real = _real(tmp_path / "real.jsonl", sample(lang, 200, seed=6))
    syn = run_dir(tmp_path / "run", sample(lang, 600, 30, seed=7))
    outs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        mix(
            [real],
            [syn],
            out=tmp_path / name,
            config=MixConfig(seed=seed, shard_records=100, **QUIET),
        )
        outs[name] = (tmp_path / name / "manifest.jsonl").read_bytes()
    assert outs["a"] == outs["b"]
    rep = [json.loads(x) for x in outs["a"].splitlines()]
    other = [json.loads(x) for x in outs["c"].splitlines()]

    def part(m: list[dict], src: str) -> set[tuple[str, int]]:
        return {(x["id"], x["shard"]) for x in m if x["source"] == src}

    assert part(rep, "real") == part(other, "real")
    assert part(rep, "synthetic") != part(other, "synthetic")
    r_a = json.loads((tmp_path / "a" / "mix_report.json").read_text())
    r_b = json.loads((tmp_path / "b" / "mix_report.json").read_text())
    assert r_a == r_b and r_a["seed"] == 3 and len(r_a["config_hash"]) == 64
    assert r_a["inputs"]["real"][0]["sha256"] and r_a["outputs"]["manifest.jsonl"]


def test_provenance_rejections_have_reasons(lang: np.ndarray, tmp_path: Path) -> None:
    real = _real(tmp_path / "real.jsonl", sample(lang, 100, seed=8))
    t = sample(lang, 5, seed=9)
    ok = [{"verifier": "v", "ok": True}]
    syn = write_jsonl(tmp_path / "syn.jsonl", [
        {"id": "good", "data": {"text": t[0]}, "meta": {"verdicts": ok}},
        {"id": "noverdict", "data": {"text": t[1]}, "meta": {}},
        {"id": "failed", "data": {"text": t[2]}, "meta": {"verdicts": [{"ok": False}]}},
        {"id": "rejected", "data": {"text": t[3]}, "meta": {"verdicts": ok, "reject_reason": "x"}},
        {"id": "deep", "data": {"text": t[4]}, "meta": {"verdicts": ok, "lineage_depth": 2}},
    ])  # fmt: skip
    report = mix([real], [syn], out=tmp_path / "out", config=MixConfig(**QUIET))
    assert {
        r["id"] for r in read_shards(tmp_path / "out") if r["meta"]["source"] == "synthetic"
    } == {"good"}
    assert report["removed"]["synthetic"] == {"lineage_too_deep": 1, "unverified": 2}
    loose = mix([real], [syn], out=tmp_path / "out2",
                config=MixConfig(require_verified=False, max_lineage_depth=2, **QUIET))  # fmt: skip
    assert loose["counts"]["synthetic"]["selected"] == 3  # no verdicts + deep now allowed


def test_floor_violations_are_errors_not_silent(lang: np.ndarray, tmp_path: Path) -> None:
    real = _real(tmp_path / "real.jsonl", sample(lang, 50, seed=10))
    syn = run_dir(tmp_path / "run", sample(lang, 50, seed=11))
    with pytest.raises(SynthError, match="real share of 0.50"):
        mix([real], [syn], out=tmp_path / "o", config=MixConfig(target_tokens=100_000, **QUIET))
    with pytest.raises(ConfigError, match="below the floor"):
        MixConfig(max_synthetic_ratio=1.5)
    with pytest.raises(ConfigError, match="below 0.25"):
        MixConfig(real_floor=0.2, max_synthetic_ratio=1.0)
    assert MixConfig(real_floor=0.2, allow_low_real=True).real_floor == 0.2
    with pytest.raises(ConfigError, match="below the real floor"):
        MixConfig(strategy="fixed_fraction", real_fraction=0.4)
    with pytest.raises(SynthError, match="real pool is empty"):
        mix(
            [_real(tmp_path / "none.jsonl", [])],
            [syn],
            out=tmp_path / "o",
            config=MixConfig(**QUIET),
        )


def test_fixed_fraction_with_a_token_budget(lang: np.ndarray, tmp_path: Path) -> None:
    real = _real(tmp_path / "real.jsonl", sample(lang, 300, seed=12))
    syn = run_dir(tmp_path / "run", sample(lang, 300, seed=13))
    cfg = MixConfig(strategy="fixed_fraction", real_fraction=0.7, target_tokens=10_000, **QUIET)
    report = mix([real], [syn], out=tmp_path / "o", config=cfg)
    assert 0.69 <= report["real_fraction"] <= 0.75
    assert report["counts"]["real"]["selected"] < report["counts"]["real"]["candidates"]


def test_monitor_refuses_a_collapsed_batch(lang: np.ndarray, tmp_path: Path) -> None:
    real = _real(tmp_path / "real.jsonl", sample(lang, 1200, seed=14))
    good = run_dir(tmp_path / "good", sample(lang, 300, seed=15), prefix="g")
    bad = run_dir(tmp_path / "bad", sample(truncate(lang), 300, seed=16), prefix="b")
    cfg = MixConfig(anchor_fraction=0.25, monitor_sample_docs=300)
    report = mix([real], [good, bad], out=tmp_path / "o", config=cfg)
    status = {Path(b["path"]).name: b["monitor"]["status"] for b in report["inputs"]["synthetic"]}
    assert status == {"good": "ok", "bad": "fail"}
    assert report["removed"]["synthetic"]["monitor_fail"] == 300
    assert all(r["id"].startswith("g") for r in read_shards(tmp_path / "o")
               if r["meta"]["source"] == "synthetic")  # fmt: skip


def test_decontamination_inside_the_mix(lang: np.ndarray, tmp_path: Path) -> None:
    texts = sample(lang, 200, 400, seed=17)
    real = _real(tmp_path / "real.jsonl", texts[:100])
    syn = run_dir(tmp_path / "run", texts[100:])
    leaked = texts[150].split()[200:220]
    write_jsonl(tmp_path / "evals" / "bench.jsonl", [{"question": " ".join(leaked)}])
    report = mix(
        [real], [syn], out=tmp_path / "o", eval_sets=[tmp_path / "evals"], config=MixConfig(**QUIET)
    )
    assert report["decontam"]["hits"] == {"bench": 1}
    assert report["removed"]["synthetic"]["decontam_cut"] == 1
    assert all(" ".join(leaked) not in r["data"]["text"] for r in read_shards(tmp_path / "o"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 400), min_size=1, max_size=60),
    st.lists(st.integers(0, 400), max_size=120),
    st.sampled_from([0.25, 0.5, 0.618, 0.75]),
    st.floats(0.0, 1.0),
    st.integers(1, 30),
    st.integers(0, 5),
)
def test_plan_keeps_ratio_bounds_for_any_sizes(
    real: list[int], syn: list[int], floor: float, lam_share: float, shard: int, seed: int
) -> None:
    lam = lam_share * (1 - floor) / floor
    p = plan([Item(f"r{i}", t) for i, t in enumerate(real)],
             [Item(f"s{i}", t) for i, t in enumerate(syn)],
             strategy="accumulate", real_floor=floor, max_synthetic_ratio=lam,
             real_fraction=None, target_tokens=None, shard_records=shard, seed=seed)  # fmt: skip
    assert sorted(i for s in p.shards for i in s.real) == list(range(len(real)))
    real_tok = sum(s.real_tokens for s in p.shards)
    syn_tok = sum(s.synthetic_tokens for s in p.shards)
    assert syn_tok <= lam * real_tok + 1e-6
    for s in p.shards:
        assert s.real_fraction >= floor - 1e-9
    chosen = sorted(i for s in p.shards for i in s.synthetic)
    assert len(chosen) == len(set(chosen))


def test_mix_from_config_runs_a_recipe_section(lang: np.ndarray, tmp_path: Path) -> None:
    _real(tmp_path / "data" / "real.jsonl", sample(lang, 200, seed=18))
    run = run_dir(tmp_path / "out" / "run", sample(lang, 100, seed=19))
    report = mix_from_config({"real": "data/real.jsonl", "monitor": False, "shard_records": 50},
                             run, base_dir=tmp_path, seed=5)  # fmt: skip
    assert report["seed"] == 5 and (run / "mixed" / "mix_report.json").is_file()
    with pytest.raises(ConfigError, match="mix section"):
        mix_from_config({"real": "x", "real_flor": 0.5}, run, base_dir=tmp_path)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYNTH_STATE_DIR": str(cwd / "state")}
    return subprocess.run([*SYNTH, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_cli_mix(lang: np.ndarray, tmp_path: Path) -> None:
    _real(tmp_path / "real.jsonl", sample(lang, 200, seed=20))
    run_dir(tmp_path / "run1", sample(lang, 80, seed=21))
    run_dir(tmp_path / "run2", sample(lang, 80, seed=22), prefix="t")
    write_jsonl(tmp_path / "evals" / "e.jsonl", [{"q": "nothing in common with anything here ok"}])
    res = _cli("mix", "--real", "real.jsonl", "--synthetic", "run1", "run2", "--eval-sets", "evals",
               "--real-floor", "0.5", "--max-synthetic-ratio", "1.0", "--seed", "3",
               "--out", "mixed", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "real fraction" in res.stdout and "mix_report.json" in res.stdout
    report = json.loads((tmp_path / "mixed" / "mix_report.json").read_text())
    assert report["counts"]["synthetic"]["selected"] == 160 and report["seed"] == 3
    bad = _cli("mix", "--real", "missing.jsonl", "--out", "m", cwd=tmp_path)
    assert bad.returncode == 2 and "real data not found" in bad.stderr
    assert "Traceback" not in bad.stderr
    ratio = _cli(
        "mix", "--real", "real.jsonl", "--max-synthetic-ratio", "3", "--out", "m", cwd=tmp_path
    )
    assert ratio.returncode == 2 and "max_synthetic_ratio" in ratio.stderr
