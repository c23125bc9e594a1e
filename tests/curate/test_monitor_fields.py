"""The collapse monitor measures what the model wrote, not the first text-like field.

On the demo recipe the Faker-written ticket `body` comes before the model-written
`summary` in every old rule ("text, content, document, body"); the monitor must look at
`summary` unless told otherwise (`fields:` in the recipe, `--fields` on the command line).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from collapse_fixtures import language, sample, write_jsonl
from trace_fixtures import DEMO, Recorder

import synth
from synth.cli import main
from synth.curate.monitor import MonitorConfig, monitor, monitor_path
from synth.errors import ConfigError
from synth.records import read_jsonl
from synth.runner.recipe import load
from synth.testing import StubServer

pytestmark = pytest.mark.slow  # a run against the stub imports litellm

CONFIG = {"sample_docs": 10, "baseline_draws": 4, "self_bleu_sample": 10}
FAST = MonitorConfig(**CONFIG)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo recipe answered by the stub, with a `monitor:` section naming its fields."""
    tmp = tmp_path_factory.mktemp("fields")
    anchor = write_jsonl(tmp / "anchor.jsonl", [{"text": t} for t in sample(language(), 60)])
    monitor_cfg = {"anchor": str(anchor), "history": False, "fields": ["summary", "subject"]}
    recipe = {**load(DEMO).raw, "model": "openai/stub", "monitor": {**monitor_cfg, **CONFIG}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
        mp.setenv("SYNTH_STATE_DIR", str(tmp / "state"))

        async def go() -> synth.RunResult:
            async with StubServer(answer=Recorder()) as stub:
                mp.setenv("OPENAI_API_BASE", stub.url)
                return await synth.run(recipe, n=12, out=tmp / "run")

        result = asyncio.run(go())
    kept = list(read_jsonl(tmp / "run" / "data.jsonl"))
    return {"run": tmp / "run", "anchor": anchor, "kept": kept, "result": result, "tmp": tmp}


def _measure(demo: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    anchor = [json.loads(line)["text"] for line in demo["anchor"].read_text().splitlines()]
    return monitor(texts, anchor, config=FAST)["metrics"]


def test_the_monitor_measures_the_field_the_model_wrote(demo: dict[str, Any]) -> None:
    assert all(r.meta["llm_fields"] == ["summary"] for r in demo["kept"])
    report = monitor_path(
        demo["run"], demo["anchor"], config=FAST, history=False, root=demo["tmp"] / "s"
    )
    assert report["fields"] == ["summary"]
    summaries = [r.data["summary"] for r in demo["kept"]]
    assert report["metrics"] == _measure(demo, summaries)
    bodies = [r.data["body"] for r in demo["kept"]]
    assert report["metrics"] != _measure(demo, bodies)  # what the old rule measured


def test_fields_choose_what_is_measured(demo: dict[str, Any]) -> None:
    report = monitor_path(
        demo["run"],
        demo["anchor"],
        config=FAST,
        history=False,
        root=demo["tmp"] / "s",
        fields=["body"],
    )
    assert report["fields"] == ["body"]
    assert report["metrics"] == _measure(demo, [r.data["body"] for r in demo["kept"]])


def test_the_recipes_monitor_section_takes_fields(demo: dict[str, Any]) -> None:
    report = demo["result"].monitor
    assert report is not None and report["fields"] == ["summary", "subject"]
    texts = [f"{r.data['summary']}\n{r.data['subject']}" for r in demo["kept"]]
    assert report["metrics"] == _measure(demo, texts)


def test_a_field_no_record_has_is_a_clear_error(
    demo: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="no record has the field 'sumary'") as err:
        monitor_path(demo["run"], demo["anchor"], config=FAST, history=False, fields=["sumary"])
    assert "summary" in str(err.value)  # the fields it does have
    code = main(
        ["monitor", str(demo["run"]), "--anchor", str(demo["anchor"]), "--fields", "sumary"]
    )
    assert code == 2 and "Traceback" not in capsys.readouterr().err


def test_without_model_written_fields_the_records_text_is_measured(
    demo: dict[str, Any], tmp_path: Path
) -> None:
    """Records no model touched (a rule-based recipe, real data) are measured like the
    real anchor: on their text."""
    rows = [
        {"id": str(i), "data": {"note": n, "text": b}, "meta": {}}
        for i, (b, n) in enumerate(zip(sample(language(), 12, seed=3),
                                       sample(language(), 12, seed=4), strict=True))
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "plain.jsonl", rows)
    report = monitor_path(path, demo["anchor"], config=FAST, history=False, root=tmp_path)
    assert report["fields"].startswith("the record's text")
    texts = [r["data"]["text"] for r in rows]
    assert report["metrics"] == _measure(demo, texts)
