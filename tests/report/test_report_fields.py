"""The run report measures the text the model wrote (or `--fields`), not the first
text-like field: on the demo recipe that is `summary`, not the Faker-written `body`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from trace_fixtures import DEMO, Recorder

import synth
from synth.cli import main
from synth.report.run import write_report
from synth.testing import StubServer

pytestmark = pytest.mark.slow  # a run against the stub imports litellm


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report-fields")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
        mp.setenv("SYNTH_STATE_DIR", str(tmp / "state"))

        async def go() -> None:
            async with StubServer(answer=Recorder()) as stub:
                mp.setenv("OPENAI_API_BASE", stub.url)
                await synth.run(DEMO, model="openai/stub", n=12, out=tmp / "run")

        asyncio.run(go())
    return tmp / "run"


def _summary(run_dir: Path, *args: str) -> dict[str, Any]:
    assert main(["-q", "report", str(run_dir), *args]) == 0
    return dict(json.loads((run_dir / "report.json").read_text()))


def test_the_report_measures_what_the_model_wrote_by_default(run_dir: Path) -> None:
    default = _summary(run_dir)
    summary = _summary(run_dir, "--fields", "summary")
    body = _summary(run_dir, "--fields", "body")
    assert default["fields"] == ["summary"] and body["fields"] == ["body"]
    assert default["diversity"] == summary["diversity"]
    assert default["diversity"] != body["diversity"]  # what the old first-match rule measured
    # The engine's own figure in the manifest measured the same field.
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["diversity"]["text_fields"] == ["summary"]
    assert default["diversity"]["distinct_2"] == manifest["diversity"]["distinct_2"]


def test_the_sample_headlines_show_the_models_text(run_dir: Path) -> None:
    html = write_report(run_dir).read_text()
    first = json.loads((run_dir / "data.jsonl").read_text().splitlines()[0])
    assert first["data"]["summary"][:60] in html


def test_an_unknown_field_is_refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir), "--fields", ""]) == 2
    assert "no field named" in capsys.readouterr().err
