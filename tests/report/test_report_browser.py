"""report.html as a person uses it, in headless Chromium: the generated field's text is on
the page, field profiles are there, the record browser filters to one rejection reason,
opens a record with its trace lines, and embeds a bounded, deterministic sample."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synth.records import Record, write_jsonl
from synth.report.run import write_report

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update"]  # fmt: skip
RECIPE = """\
name: ticket-summaries
model: openai/stub
steps:
  - use: faker
    template: support-tickets
  - use: prompt
    template: ticket-summary
    output_field: summary
verify:
  - {use: regex, field: summary, pattern: "^The customer"}
  - {use: length, field: summary, min: 30, max: 300}
"""
KEPT, TOO_SHORT, WRONG_START = 620, 30, 12


def _verdict(ok: bool, reason: str | None = None, detail: str = "") -> dict[str, Any]:
    return {"verifier": "regex" if reason != "too_short" else "length", "ok": ok,
            "score": 1.0 if ok else 0.0, "reason": reason, "detail": detail}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory as `synth run` leaves it, with a traces.jsonl beside the records."""
    out = tmp_path_factory.mktemp("run")
    (out / "recipe.yaml").write_text(RECIPE)
    kept, rejected, traces = [], [], []
    labels = ["billing", "returns", "shipping", "billing"]
    for i in range(KEPT + TOO_SHORT + WRONG_START):
        data = {
            "ticket_id": f"TCK-{i:05d}",
            "label": labels[i % 4],
            "amount": round(3.5 * (i % 50), 2),
            "body": f"Hello, order {i} arrived broken.",
        }
        call = {"model": "openai/stub", "trace": f"call-{i}", "input_tokens": 40}
        traces.append({"id": f"call-{i}", "messages": [{"role": "user", "content": f"ask {i}"}],
                       "answer": f"answer number {i}", "finish_reason": "stop"})  # fmt: skip
        if i < KEPT:
            data["summary"] = f"The customer reports that order {i} arrived broken."
            meta = {"index": i, "llm_calls": [call], "verdicts": [_verdict(True)]}
            kept.append(Record(f"k{i:05d}", data, meta))
        elif i < KEPT + TOO_SHORT:
            data["summary"] = "The customer."
            v = _verdict(False, "too_short", f"summary: 13 characters < 30 (record {i})")
            meta = {"index": i, "reject_reason": "too_short", "llm_calls": [call], "verdicts": [v]}
            rejected.append(Record(f"s{i:05d}", data, meta))
        else:
            data["summary"] = f"Order {i} is broken, says the customer."
            v = _verdict(False, "pattern_mismatch", "summary: does not match '^The customer'")
            meta = {"index": i, "reject_reason": "pattern_mismatch", "verdicts": [v]}
            rejected.append(Record(f"w{i:05d}", data, meta))
    write_jsonl(out / "data.jsonl", kept)
    write_jsonl(out / "rejects.jsonl", rejected)
    with open(out / "traces.jsonl", "w") as fh:
        fh.writelines(json.dumps(t) + "\n" for t in traces)
    manifest = {
        "recipe": {"name": "ticket-summaries", "file": str(out / "recipe.yaml")},
        "n": KEPT,
        "status": "finished",
        "counts": {
            "generated": KEPT + TOO_SHORT + WRONG_START,
            "kept": KEPT,
            "rejected": TOO_SHORT + WRONG_START,
            "rejected_by_reason": {"too_short": TOO_SHORT, "pattern_mismatch": WRONG_START},
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    write_report(out)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not exe:
        pytest.skip("chromium is not installed (`make system-deps` installs it with apt-get)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


def test_generated_fields_come_first_with_profiles(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    fields = html.index('id="fields"')
    assert html.index('data-field="summary"') < html.index('data-field="amount"')
    assert fields < html.index('id="rejections"') < html.index('id="browse"')
    assert "The customer reports that order" in html[fields : html.index('id="rejections"')]
    assert 'title="value histogram"' in html and 'title="length histogram"' in html
    assert "billing" in html and "50.0%" in html  # label balance: half the kept are billing


def test_page_embeds_a_bounded_deterministic_sample(run_dir: Path, tmp_path: Path) -> None:
    html = (run_dir / "report.html").read_text()
    block = html.split('<script type="application/json" id="browse-data">')[1]
    rows = json.loads(block.split("</script>")[0])["rows"]
    assert sum(1 for r in rows if r[1]) == 500  # at most 500 of the 620 kept
    assert sum(1 for r in rows if not r[1]) == TOO_SHORT + WRONG_START
    assert "embeds 500 of 620 kept and 42 of 42 rejected records" in html
    again = write_report(run_dir, out=tmp_path / "again.html").read_text()
    assert again.split('id="browse-data">')[1].split("</script>")[0] == block.split("</script>")[0]


def test_browser_filters_to_one_reason_and_opens_a_record(
    run_dir: Path, browser: Any, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_selector("#browse-js:not([hidden])")  # the CSP let the pinned script run
    generated = page.locator("#fields [data-field='summary'] .gen-examples li").first
    assert generated.is_visible() and "The customer reports that order" in generated.inner_text()

    page.select_option("#f-reason", "too_short")
    items = page.locator("#b-list li")
    assert items.count() == TOO_SHORT
    assert all("too_short" in t for t in items.all_inner_texts())
    assert "30 of 542 embedded records match" in page.inner_text("#b-count")

    items.first.click()
    detail = page.inner_text("#b-detail")
    assert '"reject_reason": "too_short"' in detail and "13 characters < 30" in detail
    assert "answer number" in detail  # its trace line from traces.jsonl

    page.fill("#f-q", "order 640 ")
    assert page.locator("#b-list li").count() == 1
    page.fill("#f-q", "")
    page.locator("a[data-reason='pattern_mismatch']").click()
    assert page.locator("#b-list li").count() == WRONG_START
    page.select_option("#f-reason", "too_short")
    page.locator("#browse").scroll_into_view_if_needed()
    shot = tmp_path / "report-browser.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, "/tmp/report-shot.png")
    assert errors == []
