"""What `synth run` prints while it works and when it ends, and its logs: a progress line
with kept/generated, rejection rate, tokens and cost so far and projected to n, a rate
that never reads 0, exactly one summary line, and JSON log lines for a log shipper."""

from __future__ import annotations

import json
from pathlib import Path

import engine_fixtures  # noqa: F401  (registers test_counter, test_ask, test_max_value)
import pytest
from stub_thread import running_stub

from synth.cli import main
from synth.cli._progress import rate_text

RECIPE = """\
name: counter-asks
model: openai/stub
concurrency: 1
steps:
  - use: test_counter
  - use: test_ask
verify:
  - {use: test_max_value, max: 79}
"""


def test_a_slow_rate_never_reads_zero() -> None:
    assert rate_text(120, 10) == "12 records/s"
    assert rate_text(4, 10) == "0.4 records/s"
    assert rate_text(5, 60) == "1 record / 12 s"
    assert rate_text(1, 3600) == "1 record / 60 min"
    assert rate_text(0, 10) == "0 records/s"


@pytest.mark.slow  # litellm's import takes seconds
def test_progress_line_and_one_summary_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "counter-asks.yaml"
    recipe.write_text(RECIPE)
    monkeypatch.setenv("SYNTH_PROGRESS_SECONDS", "0")  # a line per update, not every 5 s
    with running_stub(monkeypatch, tmp_path / "state"):
        code = main(["run", str(recipe), "-n", "12", "--out", str(tmp_path / "out")])
    assert code == 0
    out, err = capsys.readouterr()
    lines = [x for x in err.splitlines() if x.startswith("synth: ")]
    assert lines, err
    last = lines[-1]
    assert "/12 kept" in last and "generated" in last and "% rejected" in last
    assert "tokens (~" in last and "at n)" in last and "$0." in last
    assert "records/s" in last or "record /" in last
    assert " 0 records/s" not in last
    assert "12/12 kept" not in err  # the finished run's last update is the summary's job
    summary = [x for x in out.splitlines() if x.strip()]
    assert len(summary) == 1 and summary[0].startswith("Kept 12 of ")
    assert "records/s" in summary[0] or "record /" in summary[0]


def test_json_logs_on_any_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text('{"a": 1}\n{"a": 2}\n')
    assert main(["--log-format", "json", "--log-level", "debug", "inspect", str(data)]) == 0
    capsys.readouterr()
    import logging

    logging.getLogger("synth.test").info("hello %s", "there")
    err = capsys.readouterr().err
    line = json.loads(err.strip().splitlines()[-1])
    assert line["level"] == "INFO" and line["logger"] == "synth.test"
    assert line["message"] == "hello there" and line["time"].endswith("+00:00")

    assert main(["inspect", str(data), "-v", "--log-format", "text"]) == 0  # after the command
    capsys.readouterr()
    logging.getLogger("synth.test").debug("not shown at -v")
    logging.getLogger("synth.test").info("shown at -v")
    err = capsys.readouterr().err
    assert "shown at -v" in err and "not shown" not in err and not err.startswith("{")
