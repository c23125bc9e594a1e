"""A recipe's `monitor:` and `mix:` sections run after a finished run."""

import asyncio
import json
from pathlib import Path

import synth
from synth.content import load_yaml

ROOT = Path(__file__).resolve().parent.parent


def _tickets(tmp: Path, name: str, seed: int, n: int) -> Path:
    result = asyncio.run(
        synth.run(ROOT / "recipes/support-tickets.yaml", n=n, seed=seed, out=tmp / name)
    )
    path = tmp / f"{name}.jsonl"
    rows = [json.loads(line)["data"] for line in result.data_path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_monitor_then_mix_sections_write_their_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    real = _tickets(tmp_path, "real", seed=101, n=120)
    recipe = load_yaml(ROOT / "recipes/support-tickets.yaml")
    recipe["monitor"] = {"anchor": str(real)}
    recipe["mix"] = {"real": str(real), "out": str(tmp_path / "mixed")}
    recipe["name"] = "support-tickets"

    result = asyncio.run(synth.run(recipe, n=60, seed=7, out=tmp_path / "run"))

    assert result.stop_reason == "done"
    assert result.monitor is not None and result.monitor["status"] in {"ok", "warn", "fail"}
    assert (result.out / "monitor_report.json").is_file()
    if result.monitor["status"] == "fail":
        assert result.mix is None  # the mixer refuses a failed batch
    else:
        assert result.mix is not None
        report = json.loads((tmp_path / "mixed" / "mix_report.json").read_text())
        assert report == result.mix or report["seed"] == result.mix["seed"]


def test_a_recipe_without_sections_has_no_post_run_reports(tmp_path):
    result = asyncio.run(
        synth.run(ROOT / "recipes/card-transactions.yaml", n=20, seed=1, out=tmp_path / "run")
    )
    assert result.monitor is None and result.mix is None
    assert not (result.out / "monitor_report.json").exists()
