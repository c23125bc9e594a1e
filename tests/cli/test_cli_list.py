"""`synth list` and `synth validate`: what is available, and is this recipe right."""

from __future__ import annotations

import json
from pathlib import Path

import engine_fixtures  # noqa: F401  (registers test_counter and friends)
import pytest

from synth.cli import main


def project(root: Path) -> Path:
    (root / "recipes").mkdir()
    (root / "verifiers").mkdir()
    (root / "templates" / "prompts").mkdir(parents=True)
    (root / "recipes" / "good.yaml").write_text(
        "description: Counted records.\nsteps: [{use: test_counter}]\nverify: [small]\n"
    )
    (root / "verifiers" / "small.yaml").write_text(
        "use: test_max_value\ndescription: Values up to 10.\nmax: 10\n"
    )
    (root / "templates" / "t.yaml").write_text("description: A template.\nfields: {}\n")
    (root / "templates" / "prompts" / "p.j2").write_text("{{ x }}")
    return root


def test_list_shows_content_files_and_registered_entries_with_summaries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project(tmp_path)
    assert main(["list", "--root", str(root), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"name": "good", "summary": "Counted records."} in listing["recipes"]
    assert {"name": "t", "summary": "A template."} in listing["templates"]
    assert {"name": "p.j2", "summary": "prompt template"} in listing["templates"]
    assert {"name": "small", "summary": "Values up to 10.", "kind": "file"} in listing["verifiers"]
    registered = {v["name"]: v for v in listing["verifiers"] if v["kind"] == "registered"}
    assert registered["test_max_value"]["summary"].startswith("Rejects records whose value")
    steps = {s["name"]: s["summary"] for s in listing["steps"]}
    assert steps["test_counter"].startswith("Source: record i holds")
    assert main(["list", "steps", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("steps:") and "test_fanout" in out and "recipes:" not in out


def test_validate_reports_each_recipe_and_exits_2_if_any_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    monkeypatch.chdir(root)
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith("ok  recipes/good.yaml: good (hash ")
    (root / "recipes" / "bad.yaml").write_text("steps: [{use: test_counter, limit: -1}]\n")
    assert main(["validate"]) == 2
    captured = capsys.readouterr()
    assert "ok  recipes/good.yaml" in captured.out
    assert "recipes/bad.yaml: $.steps[0].limit" in captured.err and "fix:" in captured.err
    assert not (root / "out").exists()
