"""Rate limits and retries per model from a recipe's `limits:`, with the `SYNTH_LLM_*`
environment variables as the override for one run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import synth
from synth.errors import ConfigError
from synth.llm.client import LLMClient
from synth.llm.limits import paces_requests, resolve
from synth.records import read_jsonl
from synth.runner.recipe import from_dict
from synth.testing import StubServer

ROOT = Path(__file__).resolve().parents[2]
TABLE = {
    "openai/a": {"max_concurrency": 32, "rpm": 500},
    "default": {"timeout": 60, "max_attempts": 4, "rpm": 100},
}


def settings_of(table: Any, model: str | None, env: dict[str, str]) -> tuple[Any, ...]:
    m = resolve(table, model, env)
    return (m.limits.max_concurrency, m.limits.rpm, m.limits.tpm, m.retry.timeout,
            m.retry.max_attempts)  # fmt: skip


def test_a_models_entry_beats_default_which_beats_the_built_in_values() -> None:
    assert settings_of(TABLE, "openai/a", {}) == (32, 500, None, 60, 4)
    assert settings_of(TABLE, "openai/other", {}) == (64, 100, None, 60, 4)
    assert settings_of(None, "openai/a", {}) == (64, None, None, 120, 6)


def test_environment_variables_override_the_recipe_for_every_model() -> None:
    env = {"SYNTH_LLM_RPM": "50", "SYNTH_LLM_TIMEOUT": "5", "SYNTH_LLM_TPM": "9000"}
    assert settings_of(TABLE, "openai/a", env) == (32, 50, 9000, 5, 4)
    assert settings_of(TABLE, "openai/other", env) == (64, 50, 9000, 5, 4)
    with pytest.raises(ConfigError, match="positive number") as err:
        resolve(TABLE, "openai/a", {"SYNTH_LLM_RPM": "fast"})
    assert err.value.path == "SYNTH_LLM_RPM"


def test_the_transport_comes_from_the_table_or_the_environment() -> None:
    table = {"default": {"transport": "http"}, "openai/a": {"transport": "litellm"}}
    assert resolve(table, "openai/b", {}).transport == "http"
    assert resolve(table, "openai/a", {}).transport == "litellm"
    assert resolve(None, "openai/a", {"SYNTH_LLM_TRANSPORT": "http"}).transport == "http"
    with pytest.raises(ConfigError, match="unknown transport") as err:
        resolve(None, "openai/a", {"SYNTH_LLM_TRANSPORT": "grpc"})
    assert err.value.path == "SYNTH_LLM_TRANSPORT"


def test_a_sharded_run_shares_a_budget_only_when_some_model_is_paced() -> None:
    assert paces_requests(TABLE, {})
    assert paces_requests({"openai/a": {"tpm": 1000}}, {})
    assert not paces_requests({"default": {"timeout": 5}}, {})
    assert paces_requests(None, {"SYNTH_LLM_TPM": "1000"})


def prompt_recipe(**extra: Any) -> dict[str, Any]:
    return {
        "name": "limited",
        "model": "openai/stub-model",
        "concurrency": 16,
        "steps": [
            {"use": "faker", "template": "support-tickets"},
            {"use": "prompt", "prompt": "Summarize {{ ticket_id }}: {{ subject }}"},
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("limits", "path", "found"),
    [
        ({"openai/stub-model": {"rpm": -5}}, "$.limits.openai/stub-model.rpm", -5),
        ({"default": {"max_concurrency": 2.5}}, "$.limits.default.max_concurrency", 2.5),
        ({"default": {"rps": 3}}, "$.limits.default", None),
        ({"default": "fast"}, "$.limits.default", "fast"),
        ({"default": {"transport": "grpc"}}, "$.limits.default.transport", "grpc"),
        # The http transport speaks the OpenAI wire format only.
        (
            {"anthropic/claude-x": {"transport": "http"}},
            "$.limits.anthropic/claude-x.transport",
            "anthropic/claude-x",
        ),
    ],
)
def test_a_bad_limit_is_a_config_error_with_its_path(limits: Any, path: str, found: Any) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict(prompt_recipe(limits=limits), base_dir=ROOT)
    assert err.value.path == path
    if found is not None:
        assert err.value.found == found


def test_limits_stay_out_of_the_recipe_hash_so_raising_one_resumes_the_run() -> None:
    plain = from_dict(prompt_recipe(), base_dir=ROOT)
    limited = from_dict(prompt_recipe(limits=TABLE), base_dir=ROOT)
    assert plain.hash == limited.hash


def run_burst(tmp_path: Path, mp: pytest.MonkeyPatch, recipe: dict[str, Any], **kw: Any) -> Any:
    mp.setenv("OPENAI_API_KEY", "sk-test")
    mp.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))

    async def go() -> tuple[Any, dict[str, Any]]:
        # 10 requests per sliding second; the run puts 16 in flight at once.
        async with StubServer(rpm=600, rpm_window=1.0, retry_after=0.05) as stub:
            mp.setenv("OPENAI_API_BASE", stub.url)
            # litellm's first call imports for seconds, stalling the loop; paced requests
            # due meanwhile would then leave together. Keep that out of the measurement.
            await LLMClient(model="openai/warm", litellm_params={"api_base": stub.url}).complete(
                [{"role": "user", "content": "warm up"}]
            )
            stub.reset()
            result = await synth.run(recipe, n=20, out=tmp_path / "out", no_cache=True, **kw)
            return result, stub.stats.as_dict()

    return asyncio.run(go())


@pytest.mark.slow  # litellm import, and 20 requests paced at 7.5 a second
def test_a_recipe_rpm_below_the_servers_sees_no_429s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Enough attempts to outlast the server's 1 s window: the unpaced run's 429'd calls
    # (Retry-After 0.05 s) must not add up to an endpoint taken for down.
    patient = {"default": {"max_attempts": 40}}
    paced = prompt_recipe(limits={"openai/stub-model": {"rpm": 450}, **patient})
    result, stats = run_burst(tmp_path / "paced", monkeypatch, paced)
    assert result.kept == 20 and stats["ok"] >= 20
    assert stats["429"] == 0 and result.manifest["llm"]["rate_limited"] == 0
    unpaced, burst = run_burst(tmp_path / "unpaced", monkeypatch, prompt_recipe(limits=patient))
    assert burst["429"] > 0  # the same run without the recipe's rpm trips the server
    assert unpaced.kept == 20


@pytest.mark.slow  # spawns two worker processes that import litellm
def test_shard_processes_use_the_recipes_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("SYNTH_LLM_MAX_ATTEMPTS", raising=False)
    recipe = prompt_recipe(limits={"default": {"max_attempts": 1}}, budget={"max_attempts": 6})
    recipe["concurrency"] = 2

    async def go() -> dict[str, Any]:
        async with StubServer(error_rate=1.0) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            with pytest.raises(synth.LLMTransientError, match="1 attempts in a row"):
                await synth.run(recipe, n=4, out=tmp_path / "out", workers=2)
            return stub.stats.as_dict()

    stats = asyncio.run(go())
    # Each shard process stopped at its first failed call, after ONE attempt each (the
    # recipe's limit, not the default six): at most the calls in flight were sent, two
    # windows (the prompt step's and the chain's) of 2 records in each of 2 shards.
    assert stats["500"] == stats["requests"] and 1 <= stats["requests"] <= 2 * 2 * 2
    parts = sorted((tmp_path / "out" / "parts").glob("shard-*/manifest.json"))
    usages = [json.loads(p.read_text()).get("llm") or {} for p in parts]
    assert parts and all(u.get("retries", 0) == 0 for u in usages)


def test_a_recipe_can_send_its_calls_over_synths_own_http_transport(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`transport: http` for a `default` reaches every OpenAI-compatible model of the run:
    the stub sees synth's client, never litellm's, and faults are retried as usual."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    recipe = prompt_recipe(limits={"default": {"transport": "http"}})

    async def go() -> tuple[Any, dict[str, Any]]:
        async with StubServer(
            latency=0.05, error_rate=0.2, max_inflight=4, retry_after=0.05, seed=5
        ) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            result = await synth.run(recipe, n=20, out=tmp_path / "out")
            return result, stub.stats.as_dict()

    result, stats = asyncio.run(go())
    assert result.kept == 20 and stats["500"] > 0 and stats["429"] > 0
    assert stats["clients"] == {"synth": stats["requests"]}
    texts = [r.data["completion"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")]
    assert all(t.startswith("echo: Summarize ") for t in texts)
