"""`synth select` refuses a selection where most examples could not be scored: before, a
judge that answered 1 of 20 printed "Scored 1 of 20 (19 failed)" and exited 0."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from text_fixtures import text_of

from synth.cli import main
from synth.curate.selection import Scored, check_failures
from synth.errors import ConfigError
from synth.records import Record, write_jsonl
from synth.testing import StubServer

TEXTS = [f"fact {i}: water boils at 100 degrees Celsius at sea level." for i in range(5)]


def rambling(request: dict[str, Any]) -> str:
    """A judge that answers yes/no only for facts 0 and 1 and rambles for the rest."""
    data = text_of(request["messages"])
    return "yes" if "fact 0" in data or "fact 1" in data else "Well, it depends on the context."


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[StubServer]:
    server = StubServer(answer=rambling)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.__aenter__())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    monkeypatch.setenv("OPENAI_API_BASE", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    yield server
    asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_most_scores_failing_exits_2_with_the_reasons_and_writes_nothing(
    stub: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "data.jsonl"
    write_jsonl(src, [Record(f"r{i}", {"text": t}, {"index": i}) for i, t in enumerate(TEXTS)])
    out = tmp_path / "selected.jsonl"
    argv = ["select", str(src), "--keep", "0.4", "--out", str(out), "--model", "openai/stub"]
    assert main([*argv, "--no-logprobs"]) == 2
    err = capsys.readouterr().err
    assert "3 of 5 examples could not be scored by openai/stub" in err
    assert "expected yes or no" in err and "Well, it depends" in err  # the reason, shown
    assert "fix:" in err and "Traceback" not in err
    assert not out.exists()


def test_half_failing_is_still_a_selection() -> None:
    scored = [Scored({"i": i}, None if i < 2 else 0.5, "answer", "bad") for i in range(4)]
    check_failures(scored, file="d.jsonl", model="m")  # 2 of 4: not more than half


def test_the_error_counts_each_reason() -> None:
    scored = [
        Scored({}, None, "", "LLMResponseError: expected yes or no, got 'Well'"),
        Scored({}, None, "", "LLMResponseError: expected yes or no, got 'Well'"),
        Scored({}, None, "", "LLMTransientError: timeout"),
        Scored({}, 1.0, "answer"),
    ]
    with pytest.raises(ConfigError) as info:
        check_failures(scored, file="d.jsonl", model="local/smollm2")
    message = str(info.value)
    assert "3 of 4 examples could not be scored by local/smollm2" in message
    assert "2x LLMResponseError: expected yes or no" in message
    assert "1x LLMTransientError: timeout" in message
    assert info.value.file == "d.jsonl"
