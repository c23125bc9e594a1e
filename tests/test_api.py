"""The public surface: what `import synth` offers, and the two entry points' contracts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import engine_fixtures as fx
import pytest

import synth


def test_all_lists_exactly_the_public_names_and_each_exists() -> None:
    assert sorted(synth.__all__) == synth.__all__
    for name in synth.__all__:
        assert hasattr(synth, name), name
    public = {n for n in vars(synth) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(synth, n)).__name__ == "module"}
    assert public - modules == set(synth.__all__) - {"__version__"}
    assert {"run", "stream", "RunResult", "Record", "Verdict", "step", "verifier"} <= public


def test_run_and_stream_match_the_documented_call_shapes(tmp_path: Path) -> None:
    async def main() -> tuple[synth.RunResult, list[synth.Record]]:
        result = await synth.run(fx.counter_recipe(), n=10, seed=7, out=tmp_path / "tx")
        records = [r async for r in synth.stream(fx.counter_recipe(), n=10, seed=7)]
        return result, records

    result, records = asyncio.run(main())
    assert isinstance(result, synth.RunResult) and result.kept == 10
    assert [r.id for r in result.records()] == [r.id for r in records]
    assert result.out == tmp_path / "tx" and result.data_path.exists()


def test_out_defaults_to_out_slash_recipe_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = asyncio.run(synth.run(fx.counter_recipe(), n=3))
    assert result.out == Path("out/counter") and (tmp_path / "out/counter/data.jsonl").exists()


def test_nonsense_arguments_are_config_errors() -> None:
    with pytest.raises(synth.ConfigError, match="n must be at least 1"):
        asyncio.run(synth.run(fx.counter_recipe(), n=0))
    with pytest.raises(synth.ConfigError, match="input file not found"):
        asyncio.run(synth.run(fx.counter_recipe(), n=1, input="/nonexistent.csv"))


def test_a_loaded_recipe_can_be_reused_with_new_settings(tmp_path: Path) -> None:
    recipe = synth.load_recipe(_write(tmp_path, "settings: {cap: 5}\n"))
    assert recipe.chain[0].config["max"] == 5

    async def main() -> list[synth.Record]:
        return [r async for r in synth.stream(recipe, n=5, settings={"cap": 99})]

    assert max(r.data["value"] for r in asyncio.run(main())) > 5


def _write(tmp_path: Path, head: str) -> Path:
    file = tmp_path / "r.yaml"
    file.write_text(
        head + "steps: [{use: test_counter}]\nverify: [{use: test_max_value, max: '${cap}'}]\n"
    )
    return file
