"""The engine's LLM seam against the real client and a loopback stub model: `ctx.llm`
exists when a recipe has a model, usage lands in the manifest, and a spent budget is a
clean stop whose reason the manifest gives."""

from __future__ import annotations

import asyncio
from pathlib import Path

import engine_fixtures as fx
import pytest

import synth
from synth.testing import StubServer


@pytest.mark.slow  # importing litellm alone takes seconds
def test_llm_steps_get_a_client_with_usage_and_a_token_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    recipe = fx.counter_recipe() | {"model": "openai/stub", "concurrency": 1}
    recipe["steps"].append({"use": "test_ask"})

    async def main() -> tuple[synth.RunResult, synth.RunResult]:
        async with StubServer() as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            full = await synth.run(recipe, n=4, out=tmp_path / "a")
            capped = await synth.run(
                recipe | {"budget": {"max_tokens": 1000}}, n=50, seed=1, out=tmp_path / "b"
            )
            return full, capped

    full, capped = asyncio.run(main())
    assert full.stop_reason == "done" and full.kept == 4
    assert all(r.data["answer"].startswith("echo: Repeat: ") for r in full.records())
    assert full.manifest["llm"]["calls"] >= 4 and full.manifest["model"] == "openai/stub"
    assert (tmp_path / "state").is_dir()  # the cache lives in $SYNTH_STATE_DIR
    assert capped.stop_reason == "max_tokens" and 0 < capped.kept < 50
    assert capped.manifest["llm"]["calls"] >= 1
    assert len(capped.data_path.read_text().splitlines()) == capped.kept
