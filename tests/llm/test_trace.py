"""Traces: every model call of a run, as the model received it and as it answered, in
`traces.jsonl` beside the records, with each record's lineage pointing at its calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trace_fixtures import DEMO, Recorder

import synth
from synth.errors import SynthError
from synth.llm.client import LLMClient
from synth.llm.trace import TraceSink, read_traces
from synth.records import read_jsonl
from synth.runner.recipe import load
from synth.testing import StubServer

pytestmark = pytest.mark.slow  # litellm's import alone takes seconds


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))


def _run(monkeypatch: pytest.MonkeyPatch, recorder: Recorder, **kw: Any) -> list[synth.RunResult]:
    async def go() -> list[synth.RunResult]:
        async with StubServer(answer=recorder) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            outs = kw.pop("outs")
            return [await synth.run(DEMO, model="openai/stub", **kw, out=o) for o in outs]

    return asyncio.run(go())


def _records(run_dir: Path) -> list[Any]:
    return [*read_jsonl(run_dir / "data.jsonl"), *read_jsonl(run_dir / "rejects.jsonl")]


def test_the_trace_holds_what_the_model_was_asked_and_what_it_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, tmp_path)
    recorder = Recorder()
    (result,) = _run(monkeypatch, recorder, n=6, outs=[tmp_path / "run"])
    calls = list(read_traces(tmp_path / "run" / "traces.jsonl"))

    # One line per call, with the very messages the stub received and the very text it
    # sent back (matched by content: arrival order may differ from trace order). Calls
    # still in flight when the run reached n were cancelled, and say so.
    assert len(calls) == result.manifest["llm"]["calls"] >= len(recorder.requests)
    answered = [c for c in calls if "answer" in c]
    cancelled = [c for c in calls if "answer" not in c]
    assert all(c["error"].startswith("CancelledError") for c in cancelled)
    received = {
        json.dumps(b["messages"], sort_keys=True): a
        for b, a in zip(recorder.requests, recorder.answers, strict=True)
    }
    assert {json.dumps(c["messages"], sort_keys=True) for c in calls} >= set(received)
    for c in answered:
        assert received[json.dumps(c["messages"], sort_keys=True)] == c["answer"]
        assert c["model"] == "openai/stub" and c["finish_reason"] == "stop"
        assert c["params"] == {"temperature": 0.3, "max_tokens": 48}  # the recipe's step
        assert c["cached"] is False and c["input_tokens"] > 0 and c["output_tokens"] > 0
        assert c["latency_s"] >= 0 and "cost_usd" in c
    assert len({c["call_id"] for c in calls}) == len(calls)

    # Kept and rejected records alike point at their call; nothing else is inlined.
    by_id = {c["call_id"]: c for c in calls}
    records = _records(tmp_path / "run")
    assert result.kept == 6 and result.rejected > 0
    assert len(records) <= len(answered)  # answers past n are traced, not written
    for r in records:
        (entry,) = r.meta["llm_calls"]
        call = by_id[entry["call_id"]]
        assert call["answer"].strip() == r.data["summary"]
        assert r.data["subject"] in call["messages"][-1]["content"]
        assert "messages" not in entry and "answer" not in entry
    assert "traces.jsonl" in result.manifest["files"]


def test_calls_answered_from_the_cache_are_traced_as_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, tmp_path)
    recorder = Recorder()
    _run(monkeypatch, recorder, n=4, outs=[tmp_path / "a", tmp_path / "b"])
    traced = {
        name: {c["call_id"]: c for c in read_traces(tmp_path / name / "traces.jsonl")}
        for name in ("a", "b")
    }
    first = {r.id: r for r in _records(tmp_path / "a")}
    again = _records(tmp_path / "b")
    assert again and {r.id for r in again} == set(first)  # the same records, re-made
    for r in again:
        call = traced["b"][r.meta["llm_calls"][0]["call_id"]]
        before = traced["a"][first[r.id].meta["llm_calls"][0]["call_id"]]
        assert call["cached"] is True and call["cost_usd"] == 0 and before["cached"] is False
        assert call["answer"] == before["answer"] and call["messages"] == before["messages"]
        assert call["request_key"] == before["request_key"]


def test_trace_false_keeps_no_trace_and_the_same_recipe_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, tmp_path)
    raw = load(DEMO).raw
    assert load(DEMO).hash == synth.resolve({**raw, "trace": False}).hash
    recorder = Recorder()

    async def go() -> synth.RunResult:
        async with StubServer(answer=recorder) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            recipe = {**raw, "trace": False, "model": "openai/stub"}
            return await synth.run(recipe, n=3, out=tmp_path / "off")

    result = asyncio.run(go())
    assert result.kept == 3 and not (tmp_path / "off" / "traces.jsonl").exists()
    assert all("call_id" not in r.meta["llm_calls"][0] for r in _records(tmp_path / "off"))


def test_a_sharded_run_merges_the_traces_of_its_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, tmp_path)
    recorder = Recorder()
    (result,) = _run(monkeypatch, recorder, n=6, workers=2, outs=[tmp_path / "run"])
    calls = list(read_traces(tmp_path / "run" / "traces.jsonl"))
    assert result.kept == 6 and len(calls) == result.manifest["llm"]["calls"]
    ids = {c["call_id"] for c in calls}
    assert {r.meta["llm_calls"][0]["call_id"] for r in _records(tmp_path / "run")} <= ids
    assert len({i.split("-")[0] for i in ids}) == 2  # one writer per shard


def test_api_keys_in_messages_and_errors_never_reach_the_trace(tmp_path: Path) -> None:
    key, wrong = "sk-live-0123456789abcdef", "sk-wrong-9876543210fedcba"
    trace = tmp_path / "traces.jsonl"

    async def go() -> None:
        async with StubServer(api_key=key) as stub:
            for api_key in (key, wrong):
                client = LLMClient(
                    model="openai/stub",
                    litellm_params={"api_base": stub.url, "api_key": api_key},
                    trace=TraceSink(trace),
                )
                try:
                    await client.complete([{"role": "user", "content": f"my key: {api_key}"}])
                except SynthError:  # the wrong key is refused
                    pass
                finally:
                    await client.aclose()

    asyncio.run(go())
    text = trace.read_text()
    assert key not in text and wrong not in text
    ok, failed = read_traces(trace)
    assert ok["messages"][0]["content"] == "my key: ***" and "***" in ok["answer"]
    assert "Incorrect API key provided: ***" in failed["error"] and "answer" not in failed


@settings(max_examples=30, deadline=None)
@given(
    lines=st.lists(
        st.dictionaries(st.text(min_size=1, max_size=5), st.text(max_size=20), max_size=3),
        max_size=5,
    ),
    torn=st.binary(max_size=30).filter(lambda b: b"\n" not in b),
)
def test_a_resumed_trace_appends_whole_lines_after_a_torn_one(
    tmp_path_factory: pytest.TempPathFactory, lines: list[dict[str, str]], torn: bytes
) -> None:
    """Whatever a killed writer left, the next one's lines all read back."""
    path = tmp_path_factory.mktemp("t") / "traces.jsonl"
    first = TraceSink(path)
    for line in lines:
        first.write({"call_id": first.new_id(), **line})
    first.close()
    with open(path, "ab") as fh:
        fh.write(torn)  # a write cut short by a kill
    second = TraceSink(path)
    second.write({"call_id": second.new_id(), "after": "resume"})
    second.close()
    back = list(read_traces(path))
    assert [b.get("after") for b in back][-1] == "resume" and len(back) == len(lines) + 1


def test_a_resumed_run_appends_to_its_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped by its budget and continued with a larger one keeps the first
    process's calls and adds the second's; every record still finds its call."""
    _env(monkeypatch, tmp_path)
    recorder = Recorder()

    async def go() -> tuple[synth.RunResult, synth.RunResult]:
        async with StubServer(answer=recorder) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            out = tmp_path / "run"
            short = await synth.run(DEMO, model="openai/stub", n=6, max_attempts=3, out=out)
            return short, await synth.run(DEMO, model="openai/stub", n=6, out=out)

    short, full = asyncio.run(go())
    assert short.stop_reason == "max_attempts" and full.resumed and full.kept == 6
    calls = list(read_traces(tmp_path / "run" / "traces.jsonl"))
    assert len({c["call_id"].split("-")[0] for c in calls}) == 2  # two processes wrote
    ids = {c["call_id"] for c in calls}
    assert all(r.meta["llm_calls"][0]["call_id"] in ids for r in _records(tmp_path / "run"))
