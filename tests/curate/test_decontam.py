"""Decontamination: n-gram boundaries, the GPT-3 cut, short records, hits per eval set."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from synth.curate.decontam import DecontamConfig, Decontaminator, EvalIndex
from synth.errors import ConfigError
from synth.records import Record

RNG = random.Random(7)
VOCAB = [f"w{i}" for i in range(5000)]
ITEM = [RNG.choice(VOCAB) for _ in range(40)]


def filler(k: int) -> str:
    return " ".join(RNG.choice(VOCAB) for _ in range(k))


def run(texts: list[str], **cfg: object) -> tuple[list[object], Decontaminator]:
    index = EvalIndex.from_texts(
        {"mmlu": [" ".join(ITEM)], "trivia": ["who wrote the origin of species in the year"]},
        DecontamConfig(**cfg),  # type: ignore[arg-type]
    )
    dc = Decontaminator(index)
    return dc.process([Record(f"r{i}", {"text": t}) for i, t in enumerate(texts)]), dc


def test_13_gram_is_cut_and_12_gram_is_kept() -> None:
    hit = f"{filler(150)} {' '.join(ITEM[5:18])} {filler(150)}"
    near_miss = f"{filler(150)} {' '.join(ITEM[5:17])} {filler(150)}"
    (cut, kept), dc = run([hit, near_miss])
    assert cut.action == "cut" and cut.sets == ("mmlu",)
    assert len(cut.records) == 2  # the text on each side of the removed window
    for frag in cut.records:
        assert " ".join(ITEM[5:18]) not in frag.data["text"]
        assert frag.meta["parents"] == ["r0"] and frag.id != "r0"
    assert kept.action == "clean" and kept.records[0].data["text"] == near_miss
    assert dc.hits == {"mmlu": 1}


def test_drop_mode_drops_and_punctuation_and_case_do_not_hide_a_match() -> None:
    hidden = f"{filler(150)} {', '.join(w.upper() for w in ITEM[:13])}! {filler(150)}"
    (out,), dc = run([hidden], mode="drop")
    assert out.action == "dropped" and out.records == []
    assert dc.actions["dropped"] == 1


def test_short_records_use_8_grams_and_are_dropped() -> None:
    qa8 = f"Q: {' '.join(ITEM[10:18])}? A: yes"
    qa7 = f"Q: {' '.join(ITEM[10:17])}? A: yes"
    (a, b), dc = run([qa8, qa7])
    assert a.action == "dropped" and b.action == "clean"
    assert dc.hits["mmlu"] == 1


def test_a_whole_short_eval_item_inside_a_long_record_is_found() -> None:
    text = f"{filler(120)} Who wrote The Origin of Species, in the year? {filler(120)}"
    (out,), dc = run([text])
    assert out.action == "cut" and dc.hits == {"trivia": 1}


def test_too_many_splits_drop_the_record_and_small_fragments_vanish() -> None:
    parts = []
    for k in range(12):
        parts.append(filler(120))
        parts.append(" ".join(ITEM[k : k + 13]))
    (dirty,), dc = run([" ".join(parts)])
    assert dirty.action == "dropped" and dc.actions["dropped_too_dirty"] == 1
    (edge,), _ = run([f"{' '.join(ITEM[:13])} {filler(130)}"])  # match at the very start
    assert edge.action == "cut" and len(edge.records) == 1
    assert len(edge.records[0].data["text"]) >= 200 and ITEM[0] not in edge.records[0].data["text"]


def test_eval_sets_from_a_folder_are_named_by_file(tmp_path: Path) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "gsm8k.jsonl").write_text(
        json.dumps({"question": " ".join(ITEM[:20]), "answer": "42"}) + "\n"
    )
    (tmp_path / "evals" / "arc.txt").write_text(" ".join(ITEM[20:40]) + "\n\n")
    index = EvalIndex.from_paths([tmp_path / "evals"])
    assert sorted(s.name for s in index.sets) == ["arc", "gsm8k"]
    dc = Decontaminator(index)
    dc.process([Record("a", {"text": f"{filler(120)} {' '.join(ITEM[22:36])} {filler(120)}"})])
    assert dc.hits == {"arc": 1}
    (tmp_path / "evals" / "broken.jsonl").write_text("{nope\n")
    with pytest.raises(ConfigError, match="broken.jsonl: line 1"):
        EvalIndex.from_paths([tmp_path / "evals"])
    with pytest.raises(ConfigError, match="eval set not found"):
        EvalIndex.from_paths([tmp_path / "missing"])


def test_structured_records_are_dropped_not_cut() -> None:
    index = EvalIndex.from_texts({"mmlu": [" ".join(ITEM)]})
    rec = Record("x", {"instruction": filler(150), "response": " ".join(ITEM[:20]) + filler(60)})
    (out,) = Decontaminator(index).process([rec])
    assert out.action == "dropped"


def test_decontaminate_step_counts_hits(tmp_path: Path) -> None:
    import asyncio

    from synth.context import Context
    from synth.registry import lookup

    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "quiz.txt").write_text(" ".join(ITEM) + "\n")
    texts = [f"Q: {' '.join(ITEM[:9])}? A: no", "Q: something unrelated entirely here? A: yes"]

    async def source():  # type: ignore[no-untyped-def]
        for i, t in enumerate(texts):
            yield Record(f"r{i}", {"text": t})

    async def main() -> tuple[list[str], dict[str, int]]:
        run = lookup("step", "decontaminate").factory(eval_sets=["evals"], mode="drop")
        ctx = Context(seed=1, base_dir=tmp_path)
        return [r.id async for r in run(source(), ctx)], dict(ctx.stats)

    kept, stats = asyncio.run(main())
    assert kept == ["r1"]
    assert stats == {"decontam_hits_quiz": 1, "decontam_dropped": 1}
