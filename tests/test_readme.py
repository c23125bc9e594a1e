"""The README's examples run, so they never rot.

Blocks fenced as ```console test run line by line (`$ ` commands) in a scratch copy of the
project and must exit 0, or 2 when the line ends in `# exits 2`; a ```text block right after
one shows output that the last command must print. ```python test blocks run in-process
with top-level await; ```yaml recipe blocks must validate as recipes."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from synth.runner.recipe import from_dict

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(
    r"^```(\w+)[ \t]+(test|recipe)[ \t]*\n(.*?)^```\n(?:\s*```text\n(.*?)^```)?",
    re.MULTILINE | re.DOTALL,
)
BLOCKS = [(m.group(1), m.group(3), m.group(4)) for m in FENCE.finditer(README.read_text())]


def test_readme_opens_with_make_demo_and_make_test() -> None:
    text = README.read_text()
    first_block = text.split("```", 2)[1]
    assert "make demo" in first_block and "make test" in first_block
    assert {"console", "python", "yaml"} <= {kind for kind, _, _ in BLOCKS}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's content folders: examples may write out/ freely."""
    root = tmp_path_factory.mktemp("readme")
    for folder in ("recipes", "templates", "verifiers", "data", "batches"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, root / folder)
    return root


def test_readme_examples_run(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(scratch)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SYNTH_PLUGINS", None)
    for i, (kind, body, shown) in enumerate(BLOCKS):
        where = f"README block {i} ({kind})"
        if kind == "console":
            output = ""
            for line in body.splitlines():
                if line.startswith("$ "):
                    output = _run_console(line[2:], scratch, env, where)
            for expected in (shown or "").splitlines():
                assert expected in output, f"{where}: README shows {expected!r}; got\n{output}"
        elif kind == "python":
            _run_python(body, where)
        elif kind == "yaml":
            from_dict(yaml.safe_load(body), base_dir=scratch)  # raises a ConfigError if wrong


def _run_console(line: str, cwd: Path, env: dict[str, str], where: str) -> str:
    command, _, comment = line.partition("#")
    want = 2 if "exits 2" in comment else 0
    argv = shlex.split(command)
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == want, f"{where}: `{command.strip()}` -> {res.returncode}\n{res.stderr}"
    assert "Traceback" not in res.stderr, f"{where}: {res.stderr}"
    return res.stdout + res.stderr


def _run_python(source: str, where: str) -> None:
    code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    result = eval(code, namespace)  # noqa: S307  (our own README, run on purpose)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
