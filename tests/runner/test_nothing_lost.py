"""Money and data across crashes and outages, judged by the stub's own counters.

A run killed with SIGKILL and started again spends at most its cap in total (plus the
calls that were on their way at each kill), and its manifest's request count is what the
server saw; an endpoint that goes down stops the run without rejecting records, so the
resumed output is byte for byte an uninterrupted run's; a missing API key fails at once,
naming the variable; answers that arrive after n was reached are cached."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import synth
from synth.testing import StubServer

ROOT = Path(__file__).resolve().parents[2]
SLOTS = 3  # model calls in flight at once: what a kill can leave unaccounted


def _recipe(prompts: Path, **extra: Any) -> dict[str, Any]:
    return {
        "name": "paid",
        "model": "openai/stub",
        "concurrency": SLOTS,
        "limits": {"default": {"max_concurrency": SLOTS}},
        "steps": [
            {"use": "read", "path": str(prompts)},
            {"use": "prompt", "prompt": "Answer briefly: {{ text }}", "max_tokens": 16},
        ],
        "verify": [{"use": "length", "field": "completion", "min": 1}],
        **extra,
    }


@pytest.fixture
def stub_process(tmp_path: Path) -> Iterator[str]:
    """The stub in its own process, so that a SIGKILLed run cannot take it along."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "synth.testing", "stub", "--latency", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield url
    finally:
        proc.kill()
        proc.wait()


def _stub_requests(url: str) -> int:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats") as resp:  # noqa: S310
        return int(json.load(resp)["requests"])


def _write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"text": f"question {i}"}) + "\n" for i in range(n)))
    return path


def _cli(root: Path, url: str, out: str, state: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "OPENAI_API_BASE": url,
        "OPENAI_API_KEY": "sk-test-not-a-key",
        "SYNTH_STATE_DIR": str(root / state),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": str(ROOT),  # the synth under test, whatever is installed
    }
    cmd = [sys.executable, "-m", "synth", "run", "recipe.yaml", "-n", "300", "--out", out]
    return subprocess.Popen(
        [*cmd, *args], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.slow
def test_a_killed_run_spends_at_most_its_cap_in_total(tmp_path: Path, stub_process: str) -> None:
    url = stub_process
    prompts = _write_prompts(tmp_path / "prompts.jsonl", 400)
    (tmp_path / "recipe.yaml").write_text(
        json.dumps(_recipe(prompts, budget={"max_tokens": 2500, "max_attempts": 400}))
    )

    whole = _cli(tmp_path, url, "whole", "state-whole")
    assert whole.wait(timeout=120) == 0, whole.stderr.read() if whole.stderr else ""
    uninterrupted = _stub_requests(url)
    assert json.loads((tmp_path / "whole/manifest.json").read_text())["stop_reason"] == "max_tokens"

    kills = 4
    for _ in range(kills):
        proc = _cli(tmp_path, url, "killed", "state-killed")
        seen = _stub_requests(url)
        deadline = time.monotonic() + 60
        while _stub_requests(url) < seen + 8 and time.monotonic() < deadline:
            time.sleep(0.02)  # a few calls paid, probably not yet checkpointed
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = _cli(tmp_path, url, "killed", "state-killed")
    assert last.wait(timeout=120) == 0, last.stderr.read() if last.stderr else ""
    interrupted = _stub_requests(url) - uninterrupted

    manifest = json.loads((tmp_path / "killed/manifest.json").read_text())
    assert manifest["stop_reason"] == "max_tokens"
    # At most the cap's worth of calls in total, plus what was in flight at each kill.
    assert interrupted <= uninterrupted + kills * SLOTS
    # And the manifest says what the server saw, within those in-flight calls.
    assert interrupted - kills * SLOTS <= manifest["llm"]["requests"] <= interrupted


@pytest.mark.slow
def test_an_outage_stops_the_run_and_a_resume_writes_what_an_uninterrupted_run_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    prompts = _write_prompts(tmp_path / "prompts.jsonl", 40)
    recipe = _recipe(prompts) | {
        "limits": {"default": {"max_concurrency": SLOTS, "max_attempts": 2}}
    }

    async def main() -> tuple[bytes, bytes, str, synth.RunResult]:
        async with StubServer() as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state-a"))
            whole = await synth.run(recipe, n=30, out=tmp_path / "whole")
            monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state-b"))
            port = stub.port
        # The endpoint is gone now: the run must stop, not reject records.
        monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
        with pytest.raises(synth.LLMTransientError) as err:
            await synth.run(recipe, n=30, out=tmp_path / "cut")
        cut_rejects = (tmp_path / "cut/rejects.jsonl").read_bytes()
        async with StubServer(port=port) as again:
            monkeypatch.setenv("OPENAI_API_BASE", again.url)
            resumed = await synth.run(recipe, n=30, out=tmp_path / "cut")
        return whole.data_path.read_bytes(), cut_rejects, str(err.value), resumed

    whole, cut_rejects, message, resumed = asyncio.run(main())
    assert cut_rejects == b""  # no record was consumed by the outage
    assert "run the same command again to resume" in message
    assert resumed.stop_reason == "done" and resumed.resumed
    # The same records, ids, data and lineage in the same order; only how long each call
    # took (and whether it came from the cache) can differ between two runs.
    assert _timeless(resumed.data_path.read_bytes()) == _timeless(whole)
    assert resumed.rejects_path.read_bytes() == b""


def _timeless(data: bytes) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in data.splitlines()]
    for row in rows:
        for call in row["meta"].get("llm_calls", []):
            call.pop("latency_s", None)
            call.pop("cached", None)
            call.pop("call_id", None)  # a trace line of this process
            call.pop("call_ids", None)
    return rows


def test_a_missing_api_key_fails_at_once_naming_the_variable(tmp_path: Path) -> None:
    prompts = _write_prompts(tmp_path / "prompts.jsonl", 3)
    (tmp_path / "recipe.yaml").write_text(json.dumps(_recipe(prompts)))
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    started = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "synth", "run", "recipe.yaml", "-n", "3", "--out", "out"],
        cwd=tmp_path,
        env={**env, "OPENAI_API_BASE": "http://127.0.0.1:9/v1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "OPENAI_API_KEY" in res.stderr and "openai/stub" in res.stderr
    assert time.monotonic() - started < 30  # no minute of retries first
    assert not (tmp_path / "out").exists()  # nothing created


def test_counters_count_what_was_sent_and_cache_what_was_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    prompts = _write_prompts(tmp_path / "prompts.jsonl", 60)
    recipe = _recipe(prompts) | {"concurrency": 12, "limits": {"default": {"max_concurrency": 12}}}

    async def main() -> tuple[synth.RunResult, int, int]:
        async with StubServer(latency=0.05, jitter=0.04) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            first = await synth.run(recipe, n=20, out=tmp_path / "a")
            return first, stub.stats.requests, stub.stats.ok

    first, sent, answered = asyncio.run(main())
    assert first.manifest["llm"]["requests"] == sent  # not the calls cancelled unsent
    # Every answer the server gave was paid for, including those that arrived after the
    # 20th record passed (up to 11 were on their way): each one is in the cache.
    assert sent > 20
    with sqlite3.connect(tmp_path / "state" / "llm-cache.sqlite") as db:
        (cached,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
    assert cached == answered


def test_re_asks_of_a_call_that_finally_fails_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from tenacity import wait_none

    from synth.llm.client import LLMClient, RetryPolicy

    async def main() -> tuple[dict[str, Any], int]:
        async with StubServer(answer=lambda request: "no JSON here") as stub:
            client = LLMClient(
                model="openai/stub",
                retry=RetryPolicy(wait=wait_none(), max_attempts=1),
                reask_limit=2,
                litellm_params={"api_base": stub.url, "api_key": "sk-test-not-a-key"},
            )
            with pytest.raises(synth.LLMResponseError):
                await client.complete(
                    [{"role": "user", "content": "Give JSON."}],
                    schema={"type": "object", "required": ["a"]},
                )
            await client.aclose()
            return client.usage(), stub.stats.requests

    usage, sent = asyncio.run(main())
    assert sent == 3 and usage["requests"] == 3
    assert usage["reasks"] == 2  # the two re-asks it made, though the call failed
