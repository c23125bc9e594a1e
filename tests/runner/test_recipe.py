"""Recipe loading: settings, named verifiers, hashing, and errors that point at the spot."""

from __future__ import annotations

import shutil
from pathlib import Path

import engine_fixtures as fx  # registers the test steps
import pytest

from synth.errors import ConfigError
from synth.runner.recipe import from_dict, load, parse_overrides


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_whole_string_setting_keeps_its_type_and_partial_ones_are_formatted() -> None:
    rec = from_dict(
        {
            "settings": {"cap": 50, "label": "x"},
            "steps": [{"use": "test_counter", "limit": "${cap}"}],
            "verify": [{"use": "test_max_value", "max": "${cap}", "name": "cap-${cap}-${label}"}],
            "description": "costs $${cap}",
        }
    )
    assert rec.steps[0].config["limit"] == 50
    assert rec.chain[0].config["max"] == 50
    assert rec.chain[0].name == "cap-50-x"
    assert rec.resolved["description"] == "costs ${cap}"


def test_set_overrides_a_default_and_changes_the_hash() -> None:
    raw = fx.counter_recipe(limit="${n}") | {"settings": {"n": 5}}
    base, other = from_dict(raw), from_dict(raw, settings=parse_overrides(["n=7"]))
    assert other.steps[0].config["limit"] == 7
    assert base.hash != other.hash
    assert from_dict(raw).hash == base.hash  # stable


def test_budget_and_concurrency_do_not_change_the_hash() -> None:
    raw = fx.counter_recipe()
    tuned = raw | {"budget": {"max_attempts": 5}, "concurrency": 2, "description": "d"}
    assert from_dict(raw).hash == from_dict(tuned).hash
    assert from_dict(tuned).budget.attempts_for(100) == 5
    assert from_dict(raw).budget.attempts_for(100) == 1100


def test_unknown_setting_names_path_and_fix() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"steps": [{"use": "test_counter", "limit": "${nope}"}]})
    e = err.value
    assert e.path == "$.steps[0].limit" and "nope" in e.message
    assert "--set nope=" in (e.fix or "")


def test_set_of_a_setting_the_recipe_does_not_have_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no setting 'lmit'"):
        from_dict(fx.counter_recipe(), settings={"lmit": 3})


def test_parse_overrides_reads_values_as_yaml() -> None:
    assert parse_overrides(["a=3", "b=x y", "c=[1, 2]", "d=", "e=true"]) == {
        "a": 3,
        "b": "x y",
        "c": [1, 2],
        "d": "",
        "e": True,
    }
    with pytest.raises(ConfigError, match="malformed --set"):
        parse_overrides(["novalue"])


def test_step_config_errors_carry_the_path_inside_the_recipe(tmp_path: Path) -> None:
    file = write(
        tmp_path / "recipes" / "r.yaml",
        "steps:\n  - use: test_counter\n  - use: test_fanout\n    k: zero\n",
    )
    with pytest.raises(ConfigError) as err:
        load(file)
    e = err.value
    assert (e.file, e.path) == (str(file), "$.steps[1].k")
    assert e.expected == "a value of type integer" and e.found == "zero"
    assert "$.steps[1].k" in (e.fix or "")


def test_named_verifier_is_found_in_verifiers_and_reports_under_its_name(tmp_path: Path) -> None:
    write(tmp_path / "verifiers" / "small.yaml", "use: test_max_value\ndescription: d\nmax: 10\n")
    file = write(
        tmp_path / "recipes" / "r.yaml",
        "steps: [{use: test_counter}]\nverify:\n  - small\n  - {use: small, max: 20, name: s2}\n",
    )
    rec = load(file)
    assert rec.base_dir == tmp_path.resolve()
    assert [(v.name, v.use, v.config) for v in rec.chain] == [
        ("small", "test_max_value", {"max": 10}),
        ("s2", "test_max_value", {"max": 20}),
    ]
    # The named file's content is part of the hash: editing it changes the run.
    write(tmp_path / "verifiers" / "small.yaml", "use: test_max_value\nmax: 11\n")
    assert load(file).hash != rec.hash


def test_bad_named_verifier_file_points_at_that_file(tmp_path: Path) -> None:
    vfile = write(tmp_path / "verifiers" / "bad.yaml", "use: test_max_value\nmax: high\n")
    file = write(tmp_path / "recipes" / "r.yaml", "steps: [{use: test_counter}]\nverify: [bad]\n")
    with pytest.raises(ConfigError) as err:
        load(file)
    assert (err.value.file, err.value.path) == (str(vfile), "$.max")


def test_unknown_verifier_lists_what_exists(tmp_path: Path) -> None:
    file = write(tmp_path / "r.yaml", "steps: [{use: test_counter}]\nverify: [nope]\n")
    with pytest.raises(ConfigError) as err:
        load(file)
    assert err.value.path == "$.verify[0]"
    assert "test_max_value" in (err.value.expected or "")


def test_registered_verifier_can_be_named_by_a_bare_string() -> None:
    rec = from_dict({"steps": [{"use": "test_counter"}], "verify": ["test_even"]})
    assert [v.use for v in rec.chain] == ["test_even"]


def test_recipe_keys_for_later_layers_pass_through() -> None:
    rec = from_dict(
        fx.counter_recipe()
        | {"mix": {"real": "x.jsonl"}, "monitor": {"anchor": "a"}, "model": "local/x"}
        | {"budget": {"max_cost_usd": 1.5, "max_tokens": 1000}}
    )
    assert rec.mix == {"real": "x.jsonl"} and rec.monitor == {"anchor": "a"}
    assert rec.budget.max_cost_usd == 1.5 and rec.needs_llm
    assert not from_dict(fx.counter_recipe()).needs_llm


def test_recipe_name_defaults_to_the_file_stem_and_can_be_found_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "recipes" / "my-recipe.yaml", "steps: [{use: test_counter}]\n")
    monkeypatch.chdir(tmp_path)
    assert load("my-recipe").name == "my-recipe"


def test_a_factory_that_rejects_its_config_is_reported_at_the_step() -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"steps": [{"use": "test_counter"}, {"use": "test_fanout", "kk": 2}]})
    assert err.value.path == "$.steps[1]" and "kk" in err.value.message


def test_template_and_prompt_contents_are_part_of_the_hash(tmp_path: Path) -> None:
    """Editing a template (or a prompt) must not resume into records of the old version;
    moving the whole project folder keeps the hash."""
    root = Path(__file__).resolve().parents[2]
    project = tmp_path / "a"
    for kind in ("recipes", "templates"):
        shutil.copytree(root / kind, project / kind)
    recipe = project / "recipes" / "card-transactions.yaml"
    before = load(recipe).hash
    moved = tmp_path / "b"
    shutil.copytree(project, moved)
    assert load(moved / "recipes" / "card-transactions.yaml").hash == before

    template = project / "templates" / "card-transactions.yaml"
    template.write_text(template.read_text() + "\n# an edit\n")
    assert load(recipe).hash != before

    prompt = project / "templates" / "prompts" / "paraphrase.j2"
    paraphrase = project / "recipes" / "paraphrase-support-tickets.yaml"
    ph = load(paraphrase).hash
    prompt.write_text(prompt.read_text() + "\n")
    assert load(paraphrase).hash != ph
