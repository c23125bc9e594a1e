"""Issue 19: hostile or wrong input through the real CLI is a clear error (exit 2, file
and line named, no traceback), never a hang, a traceback or something created."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def synth(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
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
