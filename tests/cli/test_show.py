"""`synth show RUN RECORD_ID`: a record's story, read back from a real run's files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from trace_fixtures import DEMO, Recorder

import synth
from synth.cli import main
from synth.records import read_jsonl
from synth.runner.recipe import load
from synth.testing import StubServer

pytestmark = pytest.mark.slow  # a run against the stub imports litellm


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo recipe with a copy step after the model (so records have children), and
    the same recipe with `trace: false`, both answered by the stub."""
    tmp = tmp_path_factory.mktemp("show")
    raw = load(DEMO).raw
    steps = [*raw["steps"], {"use": "test_with_copy"}]
    recipe = {**raw, "steps": steps, "model": "openai/stub"}
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
        mp.setenv("SYNTH_STATE_DIR", str(tmp / "state"))

        async def go() -> None:
            async with StubServer(answer=recorder) as stub:
                mp.setenv("OPENAI_API_BASE", stub.url)
                await synth.run(recipe, n=6, out=tmp / "run")
                await synth.run({**recipe, "trace": False}, n=2, seed=1, out=tmp / "off")

        asyncio.run(go())
    return {"run": tmp / "run", "off": tmp / "off", "recorder": recorder}


def _show(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["show", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_rejected_record_shows_the_prompt_the_answer_and_the_verdict(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rejected = next(r for r in read_jsonl(runs["run"] / "rejects.jsonl") if "parents" not in r.meta)
    code, out, _ = _show(capsys, runs["run"], rejected.id[:10])  # a prefix is enough
    assert code == 0
    assert f"record {rejected.id}" in out and "REJECTED (pattern_mismatch)" in out
    assert "FAIL regex score 0: pattern_mismatch" in out
    assert "does not match '^The customer'" in out
    # The prompt exactly as the stub received it, line by line, and the stub's answer.
    rec = runs["recorder"]
    body = next(
        b
        for b in rec.requests
        if f"Subject: {rejected.data['subject']}\n" in b["messages"][-1]["content"]
    )
    for line in body["messages"][-1]["content"].splitlines():
        assert line in out
    assert rec.answers[rec.requests.index(body)] == rejected.data["summary"]
    assert f"[answer] (finish_reason: stop)\n    {rejected.data['summary']}" in out
    assert "written by the model: summary" in out
    assert "generator: faker, template: support-tickets" in out


def test_a_kept_record_lists_its_children_and_a_child_its_parent(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    kept = {r.id for r in read_jsonl(runs["run"] / "data.jsonl")}
    # The copy of a kept record repeats its summary: the duplicate filter rejects it.
    child = next(
        r
        for r in read_jsonl(runs["run"] / "rejects.jsonl")
        if set(r.meta.get("parents") or []) & kept
    )
    assert child.meta["reject_reason"] == "duplicate"
    (parent_id,) = child.meta["parents"]
    code, out, _ = _show(capsys, runs["run"], parent_id, "--json")
    story = json.loads(out)
    assert code == 0 and story["status"] == "kept"
    assert {"id": child.id, "status": "rejected"} in story["children"]
    assert story["calls"][0]["trace"]["answer"] == story["data"]["summary"]
    assert [v["verifier"] for v in story["verdicts"]] == [
        "regex",
        "regex",
        "length",
        "faithful",
        "exact_duplicate",
    ]
    code, out, _ = _show(capsys, runs["run"], child.id)
    assert f"parents:\n  {parent_id} (kept)" in out


def test_a_run_without_a_trace_says_so(
    runs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    record = next(read_jsonl(runs["off"] / "data.jsonl"))
    code, out, _ = _show(capsys, runs["off"], record.id)
    assert code == 0 and "KEPT" in out
    assert "(prompt and answer unknown: the run kept no trace)" in out


def test_an_unknown_run_or_record_is_a_clear_error(
    runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _show(capsys, tmp_path / "nowhere", "abc")
    assert code == 2 and not out and "not a run directory" in err and "Traceback" not in err
    assert "fix:" in err
    code, out, err = _show(capsys, runs["run"], "ffffffffffff")
    assert code == 2 and "no record 'ffffffffffff' in this run" in err
    assert "Traceback" not in err
