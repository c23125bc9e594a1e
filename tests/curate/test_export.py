"""`synth export`: each format loads back the way trainers load it, and matches."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synth.cli import main
from synth.curate.export import convert, export
from synth.errors import ConfigError
from synth.records import Record, write_jsonl

INSTRUCTIONS = [
    {"instruction": "Name three primary colours.", "response": "Red, blue and yellow."},
    {"instruction": "Say hi in French — «politely».", "response": "Bonjour !\nEnchanté."},
]
QA = [
    {
        "context": "The Senate shall be composed of two Senators from each State.",
        "question": "How many senators per state?",
        "answer": "Two.",
        "evidence": "two Senators",
    },
]
PAIRS = [{"prompt": "Boil an egg?", "chosen": "Simmer 7 minutes.", "rejected": "Microwave it."}]
REWARDS = [{"instruction": "2+2?", "response": "4", "score": 4.5}]


def load(path: Path) -> list[dict[str, Any]]:
    """Rows as `datasets.load_dataset("json", ...)` reads them; without `datasets`
    installed, through pyarrow's JSON reader, which is what its json builder uses."""
    if importlib.util.find_spec("datasets") is not None:
        import datasets

        return list(datasets.load_dataset("json", data_files=str(path), split="train"))
    from pyarrow import json as pajson

    return pajson.read_json(path).to_pylist()  # type: ignore[no-any-return]


def data_file(tmp_path: Path, rows: list[dict[str, Any]], name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    write_jsonl(path, [Record(f"id{i}", row, {"index": i}) for i, row in enumerate(rows)])
    return path


def test_openai_chat_messages(tmp_path: Path) -> None:
    out = tmp_path / "openai.jsonl"
    assert export(data_file(tmp_path, INSTRUCTIONS), "openai", out, system="Be brief.") == 2
    rows = load(out)
    for row, src in zip(rows, INSTRUCTIONS, strict=True):
        assert row == {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": src["instruction"]},
                {"role": "assistant", "content": src["response"]},
            ]
        }


def test_sharegpt_conversations(tmp_path: Path) -> None:
    out = tmp_path / "sharegpt.jsonl"
    export(data_file(tmp_path, INSTRUCTIONS), "sharegpt", out)
    rows = load(out)
    assert [r["id"] for r in rows] == ["id0", "id1"]
    assert rows[1]["conversations"] == [
        {"from": "human", "value": INSTRUCTIONS[1]["instruction"]},
        {"from": "gpt", "value": INSTRUCTIONS[1]["response"]},
    ]


def test_alpaca_puts_long_context_in_input(tmp_path: Path) -> None:
    out = tmp_path / "alpaca.jsonl"
    export(data_file(tmp_path, QA), "alpaca", out)
    assert load(out) == [
        {"instruction": QA[0]["question"], "input": QA[0]["context"], "output": QA[0]["answer"]}
    ]
    chat = convert(QA[0], "openai")["messages"]
    assert chat[0]["content"] == f"{QA[0]['context']}\n\n{QA[0]['question']}"


def test_preference_and_openai_dpo(tmp_path: Path) -> None:
    src = data_file(tmp_path, PAIRS)
    export(src, "preference", tmp_path / "pref.jsonl")
    assert load(tmp_path / "pref.jsonl") == PAIRS
    export(src, "openai", tmp_path / "dpo.jsonl")
    [row] = load(tmp_path / "dpo.jsonl")
    assert row["input"]["messages"] == [{"role": "user", "content": "Boil an egg?"}]
    assert row["preferred_output"] == [{"role": "assistant", "content": "Simmer 7 minutes."}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": "Microwave it."}]


def test_reward(tmp_path: Path) -> None:
    export(data_file(tmp_path, REWARDS), "reward", tmp_path / "reward.jsonl")
    assert load(tmp_path / "reward.jsonl") == [{"prompt": "2+2?", "response": "4", "score": 4.5}]


def test_plain_jsonl_and_explicit_field_mapping(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"q": "Why is the sky blue?", "a": "Rayleigh scattering."}) + "\n")
    with pytest.raises(ConfigError, match="no prompt field") as info:
        export(plain, "alpaca", tmp_path / "x.jsonl")
    assert "plain.jsonl:1" in str(info.value) and "--map prompt=" in str(info.value)
    export(plain, "alpaca", tmp_path / "x.jsonl", fields={"prompt": "q", "response": "a"})
    assert load(tmp_path / "x.jsonl")[0]["output"] == "Rayleigh scattering."


def test_a_failed_export_leaves_the_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n")
    bad = data_file(tmp_path, [*INSTRUCTIONS, {"instruction": "no response here"}])
    with pytest.raises(ConfigError, match=r"data.jsonl:3"):
        export(bad, "openai", out)
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl", "out.jsonl"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = data_file(tmp_path, INSTRUCTIONS)
    assert main(["export", str(src), "--format", "sharegpt"]) == 0
    assert (tmp_path / "data.sharegpt.jsonl").is_file()
    assert "Wrote 2 sharegpt examples" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "nope.jsonl"), "--format", "alpaca"]) == 2
    assert "input not found" in capsys.readouterr().err
    assert main(["export", str(src), "--format", "alpaca", "--map", "bogus"]) == 2
    assert "malformed --map" in capsys.readouterr().err


TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=5))
def test_any_text_round_trips_through_every_format(
    tmp_path: Path, pairs: list[tuple[str, str]]
) -> None:
    rows = [{"instruction": a, "response": b} for a, b in pairs]
    src = data_file(tmp_path, rows, "prop.jsonl")
    export(src, "sharegpt", tmp_path / "p.jsonl")
    got = [
        (r["conversations"][0]["value"], r["conversations"][1]["value"])
        for r in load(tmp_path / "p.jsonl")
    ]
    assert got == pairs
    export(src, "alpaca", tmp_path / "a.jsonl")
    assert [(r["instruction"], r["output"]) for r in load(tmp_path / "a.jsonl")] == pairs
