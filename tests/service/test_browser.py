"""The dashboard and the reports in a real headless Chromium (Debian's `chromium`, driven
by Playwright): what a person sees, including that a hostile record cannot run script.
Screenshots go to test-artifacts/ for a human to look at."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_fixtures import ROOT, Server

from synth.records import Record, write_jsonl
from synth.report.run import write_report

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "browser-test-token-0123456789"

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not shutil.which("chromium"),
        reason="chromium is not installed (`make system-deps` installs it with apt-get)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright.sync_playwright() as p:
        exe = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_dashboard_signs_in_and_shows_live_jobs_and_a_report(browser: Any, tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", token=TOKEN).start()
    try:
        _, done = srv.json("POST", "/v1/jobs", {"recipe": "card-transactions", "n": 300})
        srv.wait_for(done["id"], lambda j: j["status"] == "succeeded")
        _, live = srv.json("POST", "/v1/jobs", {"recipe": "card-transactions", "n": 5_000_000})
        srv.wait_for(live["id"], lambda j: j["progress"]["kept"] > 0)

        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(srv.url + "/")
        page.wait_for_selector("#login:not([hidden])")  # no data without the token
        assert page.locator("#jobs tbody tr").count() == 0
        page.fill("#token", TOKEN)
        page.click("#login-form button")
        row = page.locator(f'tr[data-job="{done["id"]}"]')
        row.wait_for()
        assert "succeeded" in row.inner_text() and "300 / 300" in row.inner_text()
        live_row = page.locator(f'tr[data-job="{live["id"]}"]')
        assert "running" in live_row.inner_text()
        first = live_row.locator("td").nth(3).inner_text()
        page.wait_for_function(  # the page polls: the running job's count moves on its own
            "([id, before]) => document.querySelector(`tr[data-job='${id}'] td:nth-child(4)`)"
            ".innerText !== before",
            arg=[live["id"], first],
            timeout=15_000,
        )
        assert page.locator("#recipe option", has_text="card-transactions").count() == 1
        page.select_option("#recipe", "card-transactions")
        page.fill("#n", "40")
        page.click("#job-form button")
        page.wait_for_selector("#message:has-text('Submitted job')")
        new_id = page.inner_text("#message").split()[-1].rstrip(".")
        page.locator(f'tr[data-job="{new_id}"]', has_text="succeeded").wait_for(timeout=30_000)
        shot(page, "dashboard.png")

        # The report link works with the session cookie, without a header.
        page.goto(srv.url + f"/v1/jobs/{done['id']}/report")
        assert page.locator("h1").inner_text().startswith("card-transactions")
        assert page.locator("#summary").get_by_text("300").count() >= 1
        assert page.locator("svg.chart").count() >= 1
        assert page.locator("#samples details").count() >= 12
        shot(page, "report.png")
        assert errors == []
        srv.call("POST", f"/v1/jobs/{live['id']}/cancel", {})
    finally:
        srv.stop()


def test_a_hostile_record_is_shown_as_text_in_the_report(browser: Any, tmp_path: Path) -> None:
    payload = "<script>window.pwned=1</script><img src=x onerror='window.pwned=2'>"
    kept = [Record(f"k{i}", {"text": f"ordinary record {i}"}, {"index": i}) for i in range(5)]
    bad = Record(
        "evil",
        {"text": payload},
        {"index": 9, "reject_reason": "injected",
         "verdicts": [{"verifier": "<b>rules</b>", "ok": False, "reason": "injected",
                       "detail": payload}]},
    )  # fmt: skip
    write_jsonl(tmp_path / "data.jsonl", kept)
    write_jsonl(tmp_path / "rejects.jsonl", [bad])
    manifest = {
        "recipe": {"name": "hostile</title><script>window.pwned=3</script>"},
        "n": 5,
        "counts": {"kept": 5, "rejected": 1, "rejected_by_reason": {"injected": 1}},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    report = write_report(tmp_path)

    page = browser.new_page()
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert page.evaluate("window.pwned") is None
    assert page.locator("script").count() == 2  # the record browser's data and pinned script
    assert page.locator("#samples img, #browse img").count() == 0
    page.locator("#samples details", has_text="injected").first.locator("summary").click()
    assert payload in page.locator("#samples").inner_text()
    assert "<b>rules</b>" in page.locator("#rejections").inner_text()
    shot(page, "report-hostile.png")
