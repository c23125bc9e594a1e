"""Issue 19: hostile or wrong input through the real CLI is a clear error (exit 2, file
and line named, no traceback), never a hang, a traceback or something created."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def synth(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # This checkout's synth whatever the cwd (the venv may hold another one).
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": path}
    # Recipes here name openai/stub-model: with a key set, the credentials check passes and
    # the error under test is the one reported (the endpoint is never reached).
    env.setdefault("OPENAI_API_KEY", "sk-test-not-a-key")
    env.setdefault("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    return subprocess.run(
        [sys.executable, "-m", "synth", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def refused(proc: subprocess.CompletedProcess[str], *says: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for s in says:
        assert s in proc.stderr, proc.stderr
    return proc.stderr


# -- 10: YAML that explodes, nests, or is not text -----------------------------------------


def _bomb(levels: int) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines += [
        "name: bomb",
        "steps:",
        "  - use: faker",
        "    template: x",
        f"    extra: *l{levels - 1}",
    ]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    file = tmp_path / "bomb.yaml"
    file.write_text(_bomb(9))
    t0 = time.monotonic()
    err = refused(synth("validate", str(file), timeout=60), str(file), "aliases", "line ")
    assert time.monotonic() - t0 < 30
    assert "250,000" in err


def test_a_recipe_nested_5000_deep_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "deep.yaml"
    file.write_text("name: deep\nsteps:\n  - use: faker\n    x: " + "[" * 5000 + "]" * 5000 + "\n")
    refused(synth("validate", str(file)), str(file), "nested too deeply", "line 4")
    block = "name: deep\nsteps:\n" + "".join("  " * i + "- a:\n" for i in range(1, 3000))
    file.write_text(block)
    refused(synth("validate", str(file)), str(file), "nested too deeply", "line ")


def test_a_self_referring_alias_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "loop.yaml"
    file.write_text("name: loop\nsettings:\n  a: &a [1, *a]\nsteps: []\n")
    refused(synth("validate", str(file)), str(file), "line 3")


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("latin1.csv", b"transaction_id,amount\nt1,3\nt2,caf\xe9\n", "line 3"),
        ("binary.jsonl", b'{"a": 1}\n\x00\x01\x89PNG\r\n\x1a\n\xff\xd8\xff', "line 2"),
        ("deep.jsonl", b'{"a": 1}\n{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "line 2"),
    ],
)
def test_an_unreadable_input_file_names_file_and_line(
    tmp_path: Path, name: str, content: bytes, line: str
) -> None:
    file = tmp_path / name
    file.write_bytes(content)
    out = tmp_path / "out"
    proc = synth("run", "perturb-transactions", "--input", str(file), "-n", "3", "--out", str(out))
    refused(proc, str(file), line)


# -- 11: accepted, but wrong -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-seconds", "-4"], "--max-seconds"),
        (["--max-seconds", "0"], "--max-seconds"),
        (["--max-seconds", "nan"], "--max-seconds"),
        (["--max-attempts", "0"], "--max-attempts"),
        (["--max-cost-usd", "-1"], "--max-cost-usd"),
        (["--max-tokens", "-3"], "--max-tokens"),
        (["-n", str(10**30)], "-n"),
        (["-n", "0"], "-n"),
        (["-n", "-5"], "-n"),
    ],
)
def test_run_refuses_impossible_numbers_and_creates_nothing(
    tmp_path: Path, args: list[str], says: str
) -> None:
    out = tmp_path / "out"
    argv = ["run", "card-transactions", "--out", str(out), *args]
    if "-n" not in args:
        argv += ["-n", "5"]
    refused(synth(*argv), says, "expected")
    assert not out.exists()


def _link_content(folder: Path) -> None:
    for name in ("templates", "verifiers"):
        (folder / name).symlink_to(ROOT / name)


def _batch_project(tmp_path: Path, batch: str) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "batches").mkdir()
    (tmp_path / "recipes" / "cards.yaml").write_text(
        (ROOT / "recipes" / "card-transactions.yaml").read_text()
    )
    _link_content(tmp_path)
    file = tmp_path / "batches" / "b.yaml"
    file.write_text(batch)
    return file


@pytest.mark.parametrize("date", ["2024-13-45", "2024-02-30", "2024-1-05", "../../etc"])
def test_batch_refuses_a_date_that_is_not_one(tmp_path: Path, date: str) -> None:
    file = _batch_project(tmp_path, "name: b\nrecipes:\n  - {recipe: cards, n: 3}\n")
    out = tmp_path / "out"
    refused(synth("batch", str(file), "--date", date, "--out", str(out)), "--date", date)
    assert not out.exists()


def test_batch_naming_an_unknown_recipe_is_a_bad_batch_file(tmp_path: Path) -> None:
    file = _batch_project(
        tmp_path, "name: b\nrecipes:\n  - {recipe: cards, n: 3}\n  - {recipe: nope, n: 3}\n"
    )
    out = tmp_path / "out"
    proc = synth("batch", str(file), "--date", "2024-05-01", "--out", str(out))
    refused(proc, str(file), "$.recipes[1].recipe", "no recipe named 'nope'")
    assert not out.exists()


def test_circular_settings_are_named(tmp_path: Path) -> None:
    file = tmp_path / "circle.yaml"
    recipe = (ROOT / "recipes" / "card-transactions.yaml").read_text()
    assert "locale: ${locale}" in recipe or "${locale}" in recipe
    text = recipe.replace("settings:\n", "settings:\n  a: ${b}\n  b: ${a}\n", 1)
    text = text.replace("${locale}", "${a}")
    file.write_text(text)
    _link_content(tmp_path)
    out = tmp_path / "out"
    err = refused(
        synth("run", str(file), "-n", "3", "--out", str(out), cwd=tmp_path), "circle", "a -> b -> a"
    )
    assert "locale" not in err.lower()
    assert not out.exists()
    refused(synth("validate", str(file), cwd=tmp_path), "a -> b -> a")


def test_settings_may_still_refer_to_settings(tmp_path: Path) -> None:
    file = tmp_path / "chain.yaml"
    recipe = (ROOT / "recipes" / "card-transactions.yaml").read_text()
    text = recipe.replace("settings:\n", "settings:\n  lang: de\n  loc: ${lang}_DE\n", 1)
    file.write_text(text.replace("${locale}", "${loc}"))
    _link_content(tmp_path)
    proc = synth("validate", str(file), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


# -- 8: render errors are config errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "says"),
    [
        ("Describe {{ merchant.__class__.__mro__ }}", "sandbox refuses"),
        ("Describe\\n{{ merchant.__len__ }}", "sandbox refuses"),
        ("Describe\\n\\n{{ 1 // 0 }}", "ZeroDivisionError"),
        ("{{ range(10**9) | list }}", "failed to render"),
    ],
)
def test_a_template_that_fails_to_render_is_a_config_error(
    tmp_path: Path, prompt: str, says: str
) -> None:
    file = tmp_path / "render.yaml"
    file.write_text(
        "name: render\nmodel: openai/stub-model\nsteps:\n"
        "  - use: faker\n    template: card-transactions\n"
        f'  - use: prompt\n    prompt: "{prompt}"\n'
    )
    _link_content(tmp_path)
    proc = synth("run", str(file), "-n", "2", "--out", str(tmp_path / "out"), cwd=tmp_path)
    line = f"line {prompt.count(chr(92) + 'n') + 1}"
    refused(proc, "<inline prompt>", says, line)
