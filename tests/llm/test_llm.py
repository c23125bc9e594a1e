"""The LLM client through the real litellm path, against the fault-injecting stub.

Every test here talks HTTP to `synth.testing.StubServer` on 127.0.0.1 with a litellm
model string (`openai/<name>` + `api_base`), so retries, admission control, caching and
accounting are exercised exactly as a user's run exercises them. Tests parametrized by
`transport` run once through litellm and once through synth's own OpenAI-compatible
transport (`transport: http`, `synth.llm.http`): both must behave the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tenacity import wait_none

from synth.errors import BudgetExceeded, ConfigError, LLMError, LLMTransientError, LLMUnavailable
from synth.llm.client import Completion, LLMClient, RetryPolicy
from synth.llm.http import TRANSPORTS
from synth.llm.ratelimit import RateLimits
from synth.records import read_jsonl
from synth.testing import StubServer

ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai/stub-model"
SYNTH = str(Path(sys.executable).with_name("synth"))
SECRET = "sk-test-SECRET-3f9a1c7e5b"
both_transports = pytest.mark.parametrize("transport", TRANSPORTS)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def client(stub: StubServer, *, model: str = MODEL, attempts: int = 8, **kw: Any) -> LLMClient:
    return LLMClient(
        model=model,
        retry=RetryPolicy(wait=wait_none(), max_attempts=attempts, timeout=kw.pop("timeout", 10)),
        litellm_params={"api_base": stub.url, "api_key": kw.pop("api_key", "sk-test")},
        **kw,
    )


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def warm(c: LLMClient, stub: StubServer) -> None:
    """litellm imports providers on its first call; keep that out of timing-sensitive tests."""
    await c.complete(user("warm-up"))
    stub.reset()


@both_transports
def test_every_request_ends_correct_despite_500s_and_a_concurrency_cap(transport: str) -> None:
    async def go() -> tuple[list[Completion], dict[str, Any], dict[str, Any]]:
        async with StubServer(
            latency=0.01, max_inflight=8, retry_after=0.05, error_rate=0.05, seed=3
        ) as stub:
            c = client(stub, limits=RateLimits(max_concurrency=32), transport=transport)
            await warm(c, stub)
            out = await asyncio.gather(*(c.complete(user(f"q{i}")) for i in range(200)))
            return out, stub.stats.as_dict(), c.usage()

    out, stats, usage = asyncio.run(go())
    assert [r.text for r in out] == [f"echo: q{i}" for i in range(200)]
    served_by = {"litellm": "AsyncOpenAI", "http": "synth"}[transport]  # the User-Agent
    assert set(stats["clients"]) == {served_by}
    assert stats["500"] > 0 and stats["429"] > 0  # the faults really happened
    assert stats["max_in_flight"] <= 8
    assert usage["failures"] == 0
    assert usage["retries"] == stats["500"] + stats["429"]
    assert usage["rate_limited"] == stats["429"]
    assert stats["429"] < 100  # AIMD settles under the cap rather than storming it


def test_a_client_rpm_below_the_servers_sees_no_429s() -> None:
    async def go(rpm: float | None) -> dict[str, Any]:
        async with StubServer(rpm=1200, rpm_window=1.0) as stub:  # 20 per sliding second
            c = client(stub, limits=RateLimits(max_concurrency=64, rpm=rpm), attempts=2)
            await warm(c, stub)
            await asyncio.gather(
                *(c.complete(user(f"q{i}")) for i in range(30)), return_exceptions=True
            )
            return stub.stats.as_dict()

    paced = asyncio.run(go(900))  # 15 per second
    assert paced["429"] == 0 and paced["ok"] == 30
    unpaced = asyncio.run(go(None))
    assert unpaced["429"] > 0  # the same burst without the client's RPM trips the server


def test_retry_after_is_honoured_by_the_default_wait() -> None:
    async def go() -> list[float]:
        async with StubServer(latency=0.2, max_inflight=1, retry_after=0.4) as stub:
            c = LLMClient(
                model=MODEL,
                limits=RateLimits(max_concurrency=2, adaptive=False),
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            await warm(c, stub)
            t0 = time.perf_counter()

            async def timed(i: int) -> float:
                await c.complete(user(f"q{i}"))
                return time.perf_counter() - t0

            return await asyncio.gather(timed(0), timed(1))

    times = sorted(asyncio.run(go()))
    assert times[1] >= 0.4 + 0.2  # the 429'd call waited Retry-After, then took its latency


def test_identical_concurrent_calls_share_one_request() -> None:
    async def go() -> tuple[list[Completion], dict[str, Any]]:
        async with StubServer(latency=0.05) as stub:
            c = client(stub)
            out = await asyncio.gather(*(c.complete(user("same")) for _ in range(10)))
            return out, stub.stats.as_dict()

    out, stats = asyncio.run(go())
    assert stats["requests"] == 1
    assert {r.text for r in out} == {"echo: same"}
    assert sum(not r.cached for r in out) == 1


@both_transports
def test_an_unreachable_endpoint_fails_after_the_attempt_cap_with_its_reason(
    transport: str,
) -> None:
    c = LLMClient(
        model=MODEL,
        transport=transport,
        retry=RetryPolicy(wait=wait_none(), max_attempts=3, timeout=5),
        litellm_params={"api_base": f"http://127.0.0.1:{free_port()}/v1", "api_key": "sk-test"},
    )
    with pytest.raises(LLMTransientError):
        asyncio.run(c.complete(user("x")))
    u = c.usage()
    assert (u["requests"], u["failures"], u["failure_reasons"]) == (3, 1, {"transient": 1})


def test_a_dead_endpoint_stops_the_run_instead_of_failing_every_record() -> None:
    c = LLMClient(
        model=MODEL,
        retry=RetryPolicy(wait=wait_none(), max_attempts=2),
        litellm_params={"api_base": f"http://127.0.0.1:{free_port()}/v1", "api_key": "sk-test"},
    )

    async def go() -> list[BaseException]:
        out = []
        for i in range(6):
            try:
                await c.complete(user(f"q{i}"))
            except LLMError as exc:
                out.append(exc)
        return out

    errors = asyncio.run(go())
    # The first call that fails every attempt takes the endpoint for down: that call and
    # every later one raise the same resumable error, and nothing more is sent.
    assert len(errors) == 6 and all(isinstance(e, LLMUnavailable) for e in errors)
    assert "run the same command again to resume" in str(errors[0])
    assert c.usage()["requests"] == 2


@both_transports
def test_a_slow_answer_times_out_and_is_retried(transport: str) -> None:
    async def go() -> tuple[float, dict[str, Any]]:
        async with StubServer(latency=1.5) as stub:
            c = client(stub, attempts=2, timeout=0.3, transport=transport)
            t0 = time.perf_counter()
            with pytest.raises(LLMTransientError):
                await c.complete(user("slow"))
            return time.perf_counter() - t0, stub.stats.as_dict()

    elapsed, stats = asyncio.run(go())
    assert stats["requests"] == 2 and elapsed < 1.4


@both_transports
def test_rejected_credentials_stop_the_run_without_leaking_the_key(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    async def go() -> ConfigError:
        async with StubServer(api_key="sk-the-right-one") as stub:
            c = LLMClient(  # the key comes from the environment
                model=MODEL, litellm_params={"api_base": stub.url}, transport=transport
            )
            with pytest.raises(ConfigError) as err:
                await c.complete(user("x"))
            return err.value

    err = asyncio.run(go())
    assert "credentials" in str(err) and "***" in str(err)
    assert SECRET not in str(err)


def test_a_token_cap_refuses_calls_before_passing_it() -> None:
    async def go() -> tuple[int, LLMClient, dict[str, Any]]:
        async with StubServer() as stub:
            c = client(stub, max_tokens=120)
            done = 0
            with pytest.raises(BudgetExceeded) as err:
                for i in range(1000):
                    await c.complete(user(f"question {i}"), max_tokens=10)
                    done += 1
            assert err.value.reason == "max_tokens"
            with pytest.raises(BudgetExceeded):  # sticky: nothing more is sent
                await c.complete(user("one more"), max_tokens=1)
            return done, c, stub.stats.as_dict()

    done, c, stats = asyncio.run(go())
    assert 0 < done == stats["requests"]
    assert c.usage()["total_tokens"] <= 120


@both_transports
def test_a_cost_cap_uses_litellms_prices(transport: str) -> None:
    async def go() -> tuple[int, dict[str, Any]]:
        async with StubServer() as stub:
            c = client(stub, model="openai/gpt-4o-mini", max_cost_usd=0.00005, transport=transport)
            done = 0
            with pytest.raises(BudgetExceeded) as err:
                for i in range(1000):
                    await c.complete(user(f"question {i}"), max_tokens=20)
                    done += 1
            assert err.value.reason == "max_cost_usd"
            return done, c.usage()

    done, usage = asyncio.run(go())
    assert done > 0
    assert 0 < usage["cost_usd"] <= 0.00005


def test_completion_lineage_is_what_a_step_records() -> None:
    c = Completion(
        "hi", model="m", input_tokens=3, output_tokens=2, cost_usd=0.1, template_hash="abc"
    )
    assert c.lineage() == {
        "model": "m",
        "template_hash": "abc",
        "cached": False,
        "input_tokens": 3,
        "output_tokens": 2,
        "cost_usd": 0.1,
        "latency_s": 0.0,
    }


def test_tests_cannot_reach_the_network() -> None:
    with socket.socket() as s, pytest.raises(RuntimeError, match="network"):
        s.connect(("203.0.113.7", 80))
    with pytest.raises(RuntimeError, match="resolve"):
        socket.getaddrinfo("api.openai.com", 443)


# --------------------------------------------------------------------------- `synth run`


@contextlib.contextmanager
def stub_process(*args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "synth.testing", "stub", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def stats(url: str, reset: bool = False) -> dict[str, Any]:
    """The stub's counters (then zeroed, with `reset`)."""
    root = url.removesuffix("/v1")
    with urllib.request.urlopen(f"{root}/stats?prompts=1") as resp:
        out: dict[str, Any] = json.loads(resp.read())
    if reset:
        urllib.request.urlopen(urllib.request.Request(f"{root}/stats/reset", method="POST")).close()
    return out


def write_recipe(tmp_path: Path, **extra: Any) -> Path:
    recipe = {
        "name": "stub-prompts",
        "model": "openai/gpt-4o-mini",
        "concurrency": 4,
        "steps": [
            {"use": "faker", "template": "support-tickets"},
            {
                "use": "prompt",
                "prompt": "Summarize {{ ticket_id }}: {{ subject }}",
                "max_tokens": 20,
            },
        ],
        **extra,
    }
    path = tmp_path / "stub-prompts.yaml"
    path.write_text(json.dumps(recipe))
    return path


def cli_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_API_BASE": url,
        "OPENAI_API_KEY": SECRET,
        "SYNTH_STATE_DIR": str(tmp_path / "state"),
    }


def cached_answers(tmp_path: Path) -> int:
    path = tmp_path / "state" / "llm-cache.sqlite"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
        except sqlite3.OperationalError:  # created but its table not yet committed
            return 0


def test_sigkill_mid_run_then_a_rerun_requests_only_the_missing_answers(tmp_path: Path) -> None:
    recipe, out = write_recipe(tmp_path), tmp_path / "out"
    cmd = [SYNTH, "run", str(recipe), "-n", "40", "--seed", "3", "--out", str(out), "-q"]
    with stub_process("--latency", "0.1") as url:
        env = cli_env(url, tmp_path)
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if cached_answers(tmp_path) >= 10:
                    break
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        first = stats(url, reset=True)
        kept_answers = cached_answers(tmp_path)
        subprocess.run(cmd, env=env, cwd=ROOT, check=True, timeout=120)
        second = stats(url)
    answered_before = set(first["prompts"])
    asked_again = set(second["prompts"]) & answered_before
    assert 10 <= kept_answers < 40 and len(answered_before) >= kept_answers
    # Only answers lost in flight at the kill are asked again; none that reached the cache.
    assert len(asked_again) == len(answered_before) - kept_answers
    assert max(second["prompts"].values()) == 1
    rows = list(read_jsonl(out / "data.jsonl"))
    assert len(rows) == 40
    for r in rows:
        assert r.data["completion"] == f"echo: Summarize {r.data['ticket_id']}: {r.data['subject']}"


def test_the_cost_cap_stops_a_run_cleanly_and_no_secret_is_written(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, budget={"max_cost_usd": 0.0001})
    out = tmp_path / "out"
    with stub_process() as url:
        done = subprocess.run(
            [SYNTH, "run", str(recipe), "-n", "500", "--out", str(out)],
            env=cli_env(url, tmp_path),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        served = stats(url)["ok"]
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stop_reason"] == "max_cost_usd"
    assert 0 < manifest["llm"]["cost_usd"] <= 0.0001
    assert manifest["llm"]["requests"] == served
    assert 0 < len(list(read_jsonl(out / "data.jsonl"))) < 500
    # The key was in the environment of the run: it must be nowhere it wrote or printed.
    assert SECRET not in done.stdout + done.stderr
    for path in [*out.rglob("*"), *(tmp_path / "state").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------- logprobs


@both_transports
def test_logprobs_come_back_when_asked_and_are_cached_with_the_answer(
    transport: str, tmp_path: Path
) -> None:
    from synth.llm.cache import FILENAME, ResponseCache
    from synth.testing import echo_logprobs

    ask = user("Is the sky blue?")

    async def go() -> tuple[list[Completion], int]:
        async with StubServer(answer=lambda request: "Yes it is") as stub:
            c = client(stub, cache=ResponseCache(tmp_path / FILENAME), transport=transport)
            plain = await c.complete(ask)  # cached without logprobs first
            scored = await c.complete(ask, logprobs=True, top_logprobs=2)
            again = await c.complete(ask, logprobs=True, top_logprobs=2)
            await c.aclose()
            return [plain, scored, again], stub.stats.requests

    (plain, scored, again), requests = asyncio.run(go())
    # The stub's logprobs for this answer: each word is its own most likely token, so the
    # top 2 asked for are the word and its first alternative.
    served = echo_logprobs({"messages": ask}, "Yes it is")
    expected = tuple(dict(list(position.items())[:2]) for position in served)
    assert plain.logprobs is None and not plain.cached
    assert scored.logprobs == expected and len(expected) == 3 and not scored.cached
    assert again.cached and again.logprobs == expected
    assert requests == 2  # the answer without logprobs was not served to the call wanting them


@both_transports
def test_an_endpoint_that_refuses_logprobs_is_asked_again_without_them(transport: str) -> None:
    async def go() -> tuple[list[Completion], int, dict[str, Any]]:
        async with StubServer(answer=lambda r: "no", refuse_params=["logprobs"]) as stub:
            c = client(stub, transport=transport)
            first = await c.complete(user("q1"), logprobs=True, top_logprobs=3)
            after_first = stub.stats.requests
            second = await c.complete(user("q2"), logprobs=True, top_logprobs=3)
            return [first, second], stub.stats.requests - after_first, c.usage()

    (first, second), second_requests, usage = asyncio.run(go())
    assert first.text == second.text == "no"
    assert first.logprobs is None and second.logprobs is None
    assert second_requests == 1  # refused once: not sent to this model again
    assert usage["failures"] == 0


# --------------------------------------------------------------------------- token counts


def test_openai_token_counts_are_exact_and_need_no_network() -> None:
    """tiktoken's own encodings are the reference (o200k_base for gpt-4o models, cl100k_base
    for gpt-4); the autouse `no_network` fixture fails the test if a count downloads."""
    import tiktoken

    from synth.llm.tokens import approx_tokens, count_tokens, exact_counter

    text = "Invoice 4471-9932-1180: paid €1,234.56 on 2023-07-14 (réf. Ωμέγα) 東京 ✓"
    counted = [count_tokens(text, model=m) for m in ("openai/gpt-4o-mini", "gpt-4o-mini")]
    gpt4 = count_tokens(text, model="openai/gpt-4")
    # Only now: tiktoken finds its files offline once litellm (imported by the counts above)
    # has pointed TIKTOKEN_CACHE_DIR at the copies it ships.
    o200k = len(tiktoken.get_encoding("o200k_base").encode(text))
    cl100k = len(tiktoken.get_encoding("cl100k_base").encode(text))
    assert o200k != cl100k != approx_tokens(text)  # so the right encoding is checked
    assert counted == [o200k, o200k] and gpt4 == cl100k
    # No tokenizer of its own offline: the approximation, and no download attempt.
    for model in ("openai/stub-model", "hosted_vllm/meta-llama/Meta-Llama-3-8B-Instruct"):
        assert exact_counter(model) is None
        assert count_tokens(text, model=model) == approx_tokens(text)


# --------------------------------------------------------------------------- transport: http


def test_http_transport_retries_an_answer_that_is_not_a_chat_completion() -> None:
    """A 200 whose body is not a chat completion (a proxy cut it off) is transient: asked
    again, and the second, whole answer is the one kept."""
    from aiohttp import web

    bodies = [b'{"choices": [{"mess', json.dumps(
        {"choices": [{"message": {"content": "whole"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    ).encode()]  # fmt: skip

    async def chat(request: web.Request) -> web.Response:
        return web.Response(body=bodies.pop(0), content_type="application/json")

    async def go() -> tuple[Completion, dict[str, Any]]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            c = LLMClient(
                model=MODEL,
                transport="http",
                retry=RetryPolicy(wait=wait_none(), max_attempts=3),
                litellm_params={"api_base": f"http://127.0.0.1:{port}/v1"},
            )
            out = await c.complete(user("x"))
            await c.aclose()
            return out, c.usage()
        finally:
            await runner.cleanup()

    out, usage = asyncio.run(go())
    assert out.text == "whole" and (out.input_tokens, out.output_tokens) == (3, 1)
    assert usage["requests"] == 2 and usage["retries"] == 1


def test_http_transport_needs_an_endpoint_for_a_self_hosted_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOSTED_VLLM_API_BASE", raising=False)
    c = LLMClient(model="hosted_vllm/my-model", transport="http")
    with pytest.raises(ConfigError) as err:
        asyncio.run(c.complete(user("x")))
    assert err.value.path == "HOSTED_VLLM_API_BASE" and "export" in (err.value.fix or "")
