"""`synth publish --push`: the folder reaches a Hub (a loopback one, via HF_ENDPOINT) with
the token as a bearer header, and the token shows up in no output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hub_server import hub_server
from publish_fixtures import qa_pairs, write_run

REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_testtokenSECRET1234567890"


def _synth(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(cwd / "hf-home"),
        **env,
    }
    full.pop("HF_TOKEN", None) if "HF_TOKEN" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "synth", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_push_uploads_the_folder_with_a_bearer_token_that_appears_nowhere(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(30))
    with hub_server(token=TOKEN) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}
        done = _synth(
            [
                "publish",
                str(run),
                "--to",
                str(tmp_path / "ds"),
                "--test-fraction",
                "0.2",
                "--push",
                "me/qa-v1",
                "--private",
            ],
            env,
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        local = {
            str(p.relative_to(tmp_path / "ds")): p.read_bytes()
            for p in (tmp_path / "ds").rglob("*")
            if p.is_file()
        }
        assert set(local) == {
            "README.md",
            "data/train-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet",
        }
        assert hub.repos["me/qa-v1"] == local  # every file arrived, byte for byte
        assert hub.private["me/qa-v1"] is True
        sent = [auth for _m, path, auth in hub.requests if path.startswith("/api/")]
        assert sent and all(auth == f"Bearer {TOKEN}" for auth in sent)
        assert "me/qa-v1" in done.stdout
    for text in (done.stdout, done.stderr, local["README.md"].decode()):
        assert TOKEN not in text


def test_a_refused_token_is_a_clear_error_without_the_token(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(5))
    with hub_server(token="hf_the_right_one_0000000") as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN}
        done = _synth(
            ["publish", str(run), "--to", str(tmp_path / "ds"), "--push", "me/x"], env, tmp_path
        )
    assert done.returncode == 2
    assert "the Hub refused the token (401)" in done.stderr
    assert "HF_TOKEN" in done.stderr and "Traceback" not in done.stderr
    assert TOKEN not in done.stderr + done.stdout


def test_no_token_at_all_says_how_to_log_in(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", qa_pairs(3))
    with hub_server() as hub:
        done = _synth(
            ["publish", str(run), "--to", str(tmp_path / "ds"), "--push", "me/x"],
            {"HF_ENDPOINT": hub.url},
            tmp_path,
        )
        assert not hub.requests  # nothing was sent
    assert done.returncode == 2
    assert "no Hugging Face token" in done.stderr and "hf auth login" in done.stderr
