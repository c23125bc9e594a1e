"""`synth run --pilot N` and `--dry-run --show-prompts K`, as a recipe author uses them
before paying for a run: the pilot calls the (stub) model for real and scales what it
measured to n, so a recipe whose verifier rejects half its candidates is estimated at
about twice the calls of one that keeps them all."""

from __future__ import annotations

import re
from pathlib import Path

import engine_fixtures  # noqa: F401  (registers test_counter, test_ask, test_even ...)
import pytest
from stub_thread import running_stub

from synth.cli import main

RECIPE = """\
name: pilot-{name}
model: openai/stub
steps:
  - use: test_counter
  - use: test_ask
verify:
  - {verify}
"""


def _estimate(out: str) -> dict[str, float]:
    line = next(x for x in out.splitlines() if "estimate for n=" in x)
    rate = re.search(r"pass rate of (\d+)%", line)
    calls = re.search(r"attempts, ([\d,]+) calls", line)
    assert rate and calls, line
    return {"pass": int(rate.group(1)), "calls": int(calls.group(1).replace(",", ""))}


@pytest.mark.slow  # litellm's import takes seconds
def test_pilot_scales_calls_by_the_pass_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keep_all = tmp_path / "all.yaml"
    keep_all.write_text(RECIPE.format(name="all", verify="{use: test_max_value, max: 1000}"))
    half = tmp_path / "half.yaml"
    half.write_text(RECIPE.format(name="half", verify="{use: test_even}"))
    out_dir = tmp_path / "must-stay-empty"
    with running_stub(monkeypatch, tmp_path / "state") as stub:
        args = ["run", str(keep_all), "-n", "1000", "--pilot", "40", "--out", str(out_dir)]
        assert main(args) == 0
        all_out = capsys.readouterr().out
        assert main(["run", str(half), "-n", "1000", "--pilot", "40"]) == 0
        half_out = capsys.readouterr().out
        sent = stub.stats.requests
    assert "pilot: 40 of 40 records passed" in all_out
    full, halved = _estimate(all_out), _estimate(half_out)
    assert full["pass"] == 100 and 1000 <= full["calls"] <= 1100  # a call may be in flight
    assert 35 <= halved["pass"] <= 65 and "odd" in half_out  # the rejection reason is named
    assert 1.5 <= halved["calls"] / full["calls"] <= 2.9
    assert not out_dir.exists()  # a pilot writes nothing where the real run goes
    assert sent >= 80  # the pilots really called the model, 40 records and more each


def test_dry_run_shows_the_first_rendered_prompts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "demo", "-n", "50", "--show-prompts", "2"]) == 0
    out = capsys.readouterr().out
    assert "--- prompt 1 of 2 (model local/smollm2) ---" in out and "prompt 2 of 2" in out
    assert out.count("[user]") == 2 and 'starting with "The customer"' in out
    assert "Product: " in out  # the template was rendered with a record's fields
    assert "nothing was sent to a model" in out
    assert main(["run", "demo", "-n", "5", "--show-prompts", "0"]) == 2
    assert "--show-prompts must be at least 1" in capsys.readouterr().err
