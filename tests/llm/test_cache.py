"""The response cache: keys, persistence, concurrency across processes, the CLI."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from synth.cli import main as cli
from synth.llm.cache import FILENAME, Entry, ResponseCache, request_key
from synth.llm.client import client_for_run
from synth.testing import StubServer

MSGS = [{"role": "user", "content": "hello"}]


def entry(text: str = "answer", model: str = "m") -> Entry:
    return Entry(model, text, 3, 2, 0.001, "stop")


@given(
    st.dictionaries(st.sampled_from(["temperature", "max_tokens", "top_p", "stop"]), st.integers())
)
def test_the_key_ignores_parameter_order(params: dict[str, Any]) -> None:
    reordered = dict(reversed(list(params.items())))
    assert request_key("m", MSGS, params, 0) == request_key("m", MSGS, reordered, 0)


def test_the_key_changes_with_everything_that_changes_the_answer() -> None:
    base = request_key("m", MSGS, {"temperature": 0.5}, 0)
    others = [
        request_key("m2", MSGS, {"temperature": 0.5}, 0),
        request_key("m", [{"role": "user", "content": "hello!"}], {"temperature": 0.5}, 0),
        request_key("m", MSGS, {"temperature": 0.7}, 0),
        request_key("m", MSGS, {"temperature": 0.5}, 1),  # another sample of the same prompt
        request_key("m", MSGS, {"temperature": 0.5, "response_format": {"type": "json"}}, 0),
    ]
    assert len({base, *others}) == 6


def test_answers_persist_across_instances_and_the_first_one_wins(tmp_path: Path) -> None:
    a = ResponseCache(tmp_path / FILENAME)
    a.put("k", entry("first"))
    a.put("k", entry("second"))
    a.close()
    b = ResponseCache(tmp_path / FILENAME)
    assert b.get("k") == entry("first")
    assert b.get("missing") is None
    b.close()


def _writer(path: str, worker: int, n: int) -> None:
    cache = ResponseCache(path)
    for i in range(n):
        cache.put(f"{worker}-{i}", entry(f"w{worker} a{i}"))
        cache.put(f"shared-{i}", entry(f"w{worker}"))  # every process races on these keys
    cache.close()


def test_several_processes_can_write_one_cache_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / FILENAME)
    ResponseCache(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    cache = ResponseCache(path)
    assert cache.stats()["entries"] == 3 * 150 + 150
    assert all(cache.get(f"{w}-149") == entry(f"w{w} a149") for w in range(3))
    cache.close()


def test_a_second_run_issues_zero_requests_and_no_cache_bypasses_it(tmp_path: Path) -> None:
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(20)]

    async def run(stub: StubServer, **kw: Any) -> list[Any]:
        c = client_for_run(
            model="openai/stub-model",
            state_dir=tmp_path,
            litellm_params={"api_base": stub.url, "api_key": kw.pop("key", "sk-one")},
            **kw,
        )
        out = await asyncio.gather(*(c.complete(p, temperature=0.2) for p in prompts))
        usage = c.usage()
        await c.aclose()
        return [out, usage]

    async def go() -> list[Any]:
        async with StubServer() as stub:
            first = await run(stub)
            after_first = stub.stats.requests
            second = await run(stub, key="sk-rotated")  # the key is not part of the cache key
            after_second = stub.stats.requests
            third = await run(stub, no_cache=True)
            return [first, second, third, after_first, after_second, stub.stats.requests]

    first, second, third, n1, n2, n3 = asyncio.run(go())
    assert (n1, n2, n3) == (20, 20, 40)
    assert [c.text for c in second[0]] == [c.text for c in first[0]]
    assert all(c.cached and c.cost_usd == 0 for c in second[0])
    assert second[1]["cache_hits"] == 20 and second[1]["requests"] == 0
    assert not any(c.cached for c in third[0])


def test_cache_cli_stats_and_clear(tmp_path: Path, capsys: Any) -> None:
    cache = ResponseCache(tmp_path / FILENAME)
    cache.put("a", entry(model="openai/x"))
    cache.put("b", entry(model="openai/x"))
    cache.put("c", entry(model="local/smollm2"))
    cache.close()

    assert cli(["cache", "stats", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 answers" in out and "openai/x: 2 answers" in out

    assert cli(["cache", "clear", "--model", "openai/x", "--state-dir", str(tmp_path)]) == 0
    assert "removed 2" in capsys.readouterr().out
    assert cli(["cache", "clear", "--state-dir", str(tmp_path)]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert cli(["cache", "stats", "--state-dir", str(tmp_path)]) == 0
    assert "0 answers" in capsys.readouterr().out


# The table as synth created it before logprobs were stored.
OLD_SCHEMA = """CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL,
text TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
cost_usd REAL NOT NULL, finish_reason TEXT, created REAL NOT NULL) WITHOUT ROWID"""


def test_an_old_cache_file_opens_keeps_its_answers_and_stores_logprobs(tmp_path: Path) -> None:
    path = tmp_path / FILENAME
    with sqlite3.connect(path) as old:
        old.execute(OLD_SCHEMA)
        old.execute("INSERT INTO responses VALUES ('k', 'm', 'answer', 3, 2, 0.001, 'stop', 0)")
    old.close()
    cache = ResponseCache(path)
    assert cache.get("k") == entry()  # no logprobs recorded for it
    scored = replace(entry("yes"), logprobs=({"yes": -0.1, " no": -2.5}, {".": -0.01}))
    cache.put("k2", scored)
    cache.close()
    again = ResponseCache(path)  # a migrated file opens again without another migration
    assert again.get("k2") == scored and again.get("k") == entry()
    again.close()


def test_a_logprobs_request_is_part_of_the_key() -> None:
    plain = request_key("m", MSGS, {"temperature": 0.0}, 0)
    wanted = request_key("m", MSGS, {"temperature": 0.0, "logprobs": True, "top_logprobs": 5}, 0)
    fewer = request_key("m", MSGS, {"temperature": 0.0, "logprobs": True, "top_logprobs": 2}, 0)
    assert len({plain, wanted, fewer}) == 3
