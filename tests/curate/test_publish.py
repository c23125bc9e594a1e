"""`synth publish`: a dataset folder that `datasets.load_dataset` loads as-is, with a card
built from the manifests, and a split that is deterministic and shares no text."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from publish_fixtures import qa_pairs, write_run

from synth.cli import main
from synth.curate.publish import PublishConfig, publish, split_keys, text_key


def _card(folder: Path) -> tuple[dict, str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    _, header, body = text.split("---", 2)
    return yaml.safe_load(header), body


def test_published_folder_loads_with_datasets_as_is(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(40))
    code = main(
        [
            "publish",
            str(run),
            "--to",
            str(tmp_path / "ds"),
            "--format",
            "messages",
            "--test-fraction",
            "0.25",
            "--license",
            "apache-2.0",
        ]
    )
    assert code == 0
    ds = datasets.load_dataset(str(tmp_path / "ds"))
    assert set(ds) == {"train", "test"}
    assert (ds["train"].num_rows, ds["test"].num_rows) == (30, 10)
    row = ds["train"][0]
    assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    meta = json.loads(row["meta"])
    assert meta["id"].startswith("qa-") and meta["verdicts"][0]["verifier"] == "length"
    header, _ = _card(tmp_path / "ds")
    assert header["license"] == "apache-2.0" and "synthetic" in header["tags"]
    assert header["size_categories"] == ["n<1K"]
    assert {f["split"] for f in header["configs"][0]["data_files"]} == {"train", "test"}
    declared = {f["name"] for f in header["dataset_info"]["features"]}
    assert declared == set(ds["train"].features) == {"messages", "meta"}


def test_card_body_reports_the_runs(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", qa_pairs(10), recipe="alpha", rejected=3)
    b = write_run(tmp_path / "b", qa_pairs(5, start=100), recipe="beta", rejected=0)
    (b / "mix_report.json").write_text(
        json.dumps(
            {
                "real_fraction": 0.62,
                "counts": {
                    "real": {"selected": 8, "tokens": 620},
                    "synthetic": {"selected": 5, "tokens": 380},
                },
                "inputs": {
                    "real": [{"path": "hf://datasets/org/real/a.jsonl", "sha256": "ab" * 32}],
                    "eval_sets": [{"path": "evals/gsm8k.jsonl", "sha256": "cd" * 32}],
                },
                "decontam": {"hits": {"gsm8k": 2}, "actions": {"drop": 2}},
            }
        )
    )
    result = publish([a, b], tmp_path / "ds", PublishConfig())
    assert result.splits == {"train": 15}
    header, body = _card(tmp_path / "ds")
    assert header["license"] == "other"
    for expected in (
        "`alpha` (hash `" + "f" * 64 + "`)",
        "`beta`",
        "fake/model",
        "seed: 7",
        "generated 13, kept 10, rejected 3",
        "| too_short | 3 |",
        "| length | 13 | 10 | 76.9% |",
        "| judge | 10 | 10 | 100.0% |",
        "real fraction (tokens): 0.620",
        "hf://datasets/org/real/a.jsonl",
        "evals/gsm8k.jsonl",
        "{'gsm8k': 2}",
        "synth version: 0.1.0",
        "| `parents` |",
        "| `verdicts` |",
    ):
        assert expected in body, expected


def test_license_defaults_to_the_recipes(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(3))
    (run / "recipe.yaml").write_text("name: qa\nlicense: cc-by-4.0\nsteps: []\n")
    publish([run], tmp_path / "ds", PublishConfig())
    assert _card(tmp_path / "ds")[0]["license"] == "cc-by-4.0"


def test_duplicates_are_dropped_and_never_straddle_the_split(tmp_path: Path) -> None:
    pairs = qa_pairs(20)
    a = write_run(tmp_path / "a", pairs)
    b = write_run(tmp_path / "b", [(q.upper(), "  " + r) for q, r in pairs[:10]], recipe="b")
    result = publish(
        [a, b], tmp_path / "ds", PublishConfig(fmt="prompt-completion", test_fraction=0.3)
    )
    assert result.duplicates == 10
    ds = datasets.load_dataset(str(tmp_path / "ds"))
    train = {r["prompt"].casefold() for r in ds["train"]}
    test = {r["prompt"].casefold() for r in ds["test"]}
    assert not train & test and len(train | test) == 20 and len(test) == 6


def test_same_seed_same_split_other_seed_other_split(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(50))

    def test_ids(seed: int, name: str) -> list[str]:
        publish([run], tmp_path / name, PublishConfig(test_fraction=0.2, seed=seed))
        test = datasets.load_dataset(str(tmp_path / name), split="test")
        return sorted(json.loads(m)["id"] for m in test["meta"])

    assert test_ids(1, "x") == test_ids(1, "y")
    assert test_ids(1, "x") != test_ids(2, "z")


def test_no_meta_leaves_lineage_out(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(4))
    publish([run], tmp_path / "ds", PublishConfig(meta=False))
    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train")
    assert set(ds.features) == {"instruction", "response"}


def test_bad_inputs_are_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", str(tmp_path / "nope"), "--to", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err
    assert "not a run, a mix or a JSONL file" in err and "Traceback" not in err
    run = write_run(tmp_path / "run", qa_pairs(4))
    assert main(["publish", str(run), "--to", str(tmp_path / "ds"), "--test-fraction", "1.5"]) == 2
    assert "--test-fraction" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=6), max_size=40), st.floats(0, 0.95), st.integers(0, 99))
def test_split_invariants(texts: list[str], fraction: float, seed: int) -> None:
    keys = [text_key({"text": t}) for t in texts]
    test = split_keys(keys, fraction, seed)
    unique = set(keys)
    assert test <= unique and test == split_keys(list(reversed(keys)), fraction, seed)
    if fraction > 0 and len(unique) >= 2:
        assert 1 <= len(test) <= len(unique) - 1
        assert len(test) == min(len(unique) - 1, max(1, round(fraction * len(unique))))
    else:
        assert not test
