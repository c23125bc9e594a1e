"""Prometheus metrics with recipe and model labels and latency histograms, as a scraper
sees them: from the service's `/metrics`, and from the node-exporter textfile that
`synth run --metrics-file` writes. Both parse with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from service_fixtures import Server
from stub_thread import running_stub

from synth.cli import main

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

RECIPE: dict[str, Any] = {
    "name": "card-notes",
    "model": "openai/stub",
    "steps": [
        {"use": "faker", "template": "card-transactions"},
        {
            "use": "prompt",
            "prompt": "Say one thing about {{ transaction_id }} in {{ currency }}.",
            "output_field": "note",
        },
    ],
    "verify": [{"use": "regex", "name": "usd-only", "field": "currency", "pattern": "^USD$"}],
}


def samples(text: str) -> dict[str, list[Any]]:
    """Every sample by its name (e.g. synth_llm_calls_total), via the official parser."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def check_labelled(text: str) -> None:
    got = samples(text)
    calls = [s for s in got["synth_llm_calls_total"] if s.labels.get("recipe") == "card-notes"]
    assert calls and calls[0].labels["model"] == "openai/stub" and calls[0].value >= 20
    kept = next(s for s in got["synth_records_kept_total"] if s.labels["recipe"] == "card-notes")
    assert kept.value == 20
    rejects = {s.labels["reason"]: s.value for s in got["synth_rejects_total"]}
    assert rejects.get("pattern_mismatch", 0) > 0  # the non-USD transactions
    tokens = {s.labels["direction"]: s.value for s in got["synth_llm_tokens_total"]}
    assert tokens["input"] > 0 and tokens["output"] > 0
    for name in ("synth_llm_rate_limited_total", "synth_llm_retries_total",
                 "synth_llm_cache_hits_total", "synth_llm_cost_usd_total"):  # fmt: skip
        assert any(s.labels.get("model") == "openai/stub" for s in got[name]), name
    latency = got["synth_llm_call_latency_seconds_count"]
    assert latency[0].labels == {"recipe": "card-notes", "model": "openai/stub"}
    assert latency[0].value >= 20
    inf = [s for s in got["synth_llm_call_latency_seconds_bucket"] if s.labels["le"] == "+Inf"]
    assert inf[0].value == latency[0].value
    assert got["synth_run_duration_seconds_count"][0].value == 1


@pytest.mark.slow  # litellm's import takes seconds
def test_service_metrics_have_recipe_and_model_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_stub(monkeypatch, tmp_path / "cache", latency=0.01):
        srv = Server(tmp_path / "state").start()  # job processes inherit OPENAI_API_BASE
        try:
            _, job = srv.json("POST", "/v1/jobs", {"recipe": RECIPE, "n": 20})
            srv.wait_for(job["id"], lambda j: j["status"] == "succeeded", timeout=120)
            status, headers, body = srv.call("GET", "/metrics")
        finally:
            srv.stop()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    check_labelled(text)
    assert 'synth_jobs{status="succeeded"} 1.0' in text


@pytest.mark.slow
def test_run_writes_the_same_metrics_to_a_textfile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "card-notes.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    prom = tmp_path / "textfile" / "synth.prom"
    with running_stub(monkeypatch, tmp_path / "cache", latency=0.01):
        args = ["run", str(recipe), "-n", "20", "--out", str(tmp_path / "out"), "-q"]
        assert main([*args, "--metrics-file", str(prom)]) == 0
    check_labelled(prom.read_text())
    assert not list(prom.parent.glob("*.tmp*"))  # written atomically: no temp file left


def test_batch_writes_a_textfile_with_every_recipe_of_the_night(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    batch = tmp_path / "b.yaml"
    batch.write_text(
        "name: b\nseed: 3\nrecipes:\n"
        f"  - {{recipe: {root / 'recipes' / 'card-transactions.yaml'}, n: 30}}\n"
        f"  - {{recipe: {root / 'recipes' / 'user-profiles.yaml'}, n: 10}}\n"
    )
    prom = tmp_path / "synth.prom"
    args = ["batch", str(batch), "--date", "2026-01-02", "--out", str(tmp_path / "out"), "-q"]
    main([*args, "--metrics-file", str(prom)])
    kept = {
        s.labels["recipe"]: s.value for s in samples(prom.read_text())["synth_records_kept_total"]
    }
    assert kept == {"card-transactions": 30, "user-profiles": 10}
