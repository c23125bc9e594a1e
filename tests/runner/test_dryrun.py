"""`synth run --dry-run`: calls, tokens and cost estimated without calling a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synth.cli import main as cli
from synth.errors import ConfigError
from synth.llm.litellm import price
from synth.runner import recipe as recipes
from synth.runner.dryrun import estimate, example

ROOT = Path(__file__).resolve().parents[2]


def prompt_recipe(**step: Any) -> Any:
    raw = {
        "model": "openai/gpt-4o-mini",
        "steps": [
            {"use": "faker", "template": "support-tickets"},
            {"use": "prompt", "prompt": "Summarize: {{ subject }}", "max_tokens": 30, **step},
        ],
    }
    return recipes.from_dict(raw, base_dir=ROOT)


def test_the_estimate_scales_sampled_calls_to_n_and_prices_them() -> None:
    est = estimate(prompt_recipe(samples=2), 100)
    m = est["by_model"]["openai/gpt-4o-mini"]
    assert est["calls"] == m["calls"] == 100  # 2 samples per source record, n counts outputs
    assert m["output_tokens"] == 100 * 30
    assert 100 * 5 < m["input_tokens"] < 100 * 40
    p_in, p_out = price("openai/gpt-4o-mini")
    assert m["cost_usd"] == pytest.approx(
        m["input_tokens"] * p_in + m["output_tokens"] * p_out, rel=1e-3
    )
    assert est["unpriced_models"] == []


def test_a_prompt_with_an_unknown_variable_fails_the_dry_run() -> None:
    with pytest.raises(ConfigError, match="subjekt"):
        estimate(prompt_recipe(prompt="Summarize: {{ subjekt }}"), 10)


def test_the_cli_prints_the_estimate_and_the_budget_it_would_hit(
    tmp_path: Path, capsys: Any
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: openai/gpt-4o-mini\n"
        "steps:\n  - use: faker\n    template: support-tickets\n"
        "  - use: prompt\n    prompt: 'Summarize: {{ subject }}'\n    max_tokens: 100\n"
        "budget: {max_cost_usd: 0.001}\n"
    )
    assert cli(["run", str(recipe), "-n", "1000", "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "openai/gpt-4o-mini: 1,000 calls" in out and "max_cost_usd=0.001 would stop" in out
    assert not (tmp_path / "out").exists()  # nothing was run or written


def test_placeholder_answers_match_their_schema() -> None:
    from synth.schema import errors

    schema = {
        "type": "object",
        "required": ["score", "label", "tags", "ok"],
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "label": {"enum": ["good", "bad"]},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 1},
            "ok": {"type": "boolean"},
        },
    }
    assert errors(example(schema), schema) == []
