"""A pairwise judge on a `local/` model is refused at load: the embedded 135M model prefers
the same position in both orders, so such a run spends its budget and keeps nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from text_fixtures import ROOT

from synth.cli import main
from synth.errors import ConfigError
from synth.runner.recipe import from_dict

INSTRUCTIONS = {"use": "instructions", "topics": ["cooking rice"], "respond": False}


def recipe(**preference: Any) -> dict[str, Any]:
    return {
        "model": "local/smollm2",
        "steps": [INSTRUCTIONS, {"use": "preference", **preference}],
        "verify": [{"use": "pairwise"}],
    }


def test_pairwise_preference_on_the_local_model_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(recipe(), base_dir=ROOT)  # `judge` defaults to pairwise
    assert info.value.path == "$.steps[1].judge"
    assert "local/smollm2" in str(info.value.found)
    assert "judge: pointwise" in (info.value.fix or "")


def test_pointwise_or_a_real_judge_model_is_accepted() -> None:
    from_dict(recipe(judge="pointwise"), base_dir=ROOT)
    from_dict(recipe(judge_model="openai/gpt-4o-mini"), base_dir=ROOT)
    from_dict(recipe(), base_dir=ROOT, model="openai/gpt-4o-mini")  # --model


def test_a_pairwise_verifier_judging_on_its_own_is_refused() -> None:
    raw = {"model": "local/smollm2", "steps": [INSTRUCTIONS], "verify": [{"use": "pairwise"}]}
    with pytest.raises(ConfigError) as info:
        from_dict(raw, base_dir=ROOT)
    assert info.value.path == "$.verify[0]"


def test_validate_exits_2_and_names_the_setting_to_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    shipped = str(Path("recipes/preference-pairs.yaml"))
    assert main(["validate", shipped]) == 0  # the shipped default can succeed
    assert main(["validate", shipped, "--set", "judge_method=pairwise"]) == 2
    err = capsys.readouterr().err
    assert "$.steps[1].judge" in err and "judge_method: pointwise" in err
    assert "--set judge_method=pointwise" in err and "Traceback" not in err
    real = ["--set", "judge_method=pairwise", "--model", "openai/gpt-4o-mini"]
    assert main(["validate", shipped, *real]) == 0
