"""`synth serve` against real HTTP on loopback: jobs end to end, auth, hostile input,
crash recovery and a poll storm. Rule-based recipes keep it fast."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_fixtures import ROOT, Server, alive

from synth.service.spec import Policy, RequestError, recipe_file

TOKEN = "test-token-0123456789abcdef"
BIG = 5_000_000  # a job that runs until cancelled


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("state"), args=("--max-body-kb", "4")).start()
    yield srv
    srv.stop()


def submit(srv: Server, body: dict, **kw: object) -> dict:
    status, job = srv.json("POST", "/v1/jobs", body, **kw)
    assert status == 201, job
    return job


def cancel(srv: Server, job_id: str) -> dict:
    status, job = srv.json("POST", f"/v1/jobs/{job_id}/cancel", {})
    assert status == 202, job
    return srv.wait_for(job_id, lambda j: j["status"] == "cancelled")


def test_submit_poll_stream_and_report(server: Server) -> None:
    job = submit(server, {"recipe": "card-transactions", "n": 250, "seed": 11, "label": "t1"})
    assert job["status"] in ("queued", "running") and job["seed"] == 11
    done = server.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"))
    assert done["status"] == "succeeded", done
    assert done["progress"]["kept"] == 250 and done["progress"]["fraction"] == 1.0
    assert done["progress"]["stop_reason"] == "done"

    lines: list[bytes] = []
    offset = 0
    while True:  # page through with the headers, as a client would
        status, headers, body = server.call(
            "GET", f"{job['links']['records']}?offset={offset}&limit=100"
        )
        assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
        page = body.splitlines()
        assert len(page) == int(headers["x-count"]) <= 100
        assert headers["x-available"] == "250"
        lines += page
        offset = int(headers["x-next-offset"])
        if not page:
            break
    records = [json.loads(line) for line in lines]
    assert len(records) == 250 and len({r["id"] for r in records}) == 250
    run_dir = server.state_dir / "runs" / job["id"]
    assert b"".join(line + b"\n" for line in lines) == (run_dir / "data.jsonl").read_bytes()

    status, headers, html = server.call("GET", job["links"]["report"])
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert b"card-transactions" in html and html.count(b"<script") == 2  # the browser's own
    assert "script-src 'sha256-" in headers["content-security-policy"]

    status, listing = server.json("GET", "/v1/jobs?status=succeeded")
    assert job["id"] in [j["id"] for j in listing["jobs"]]
    status, _, metrics = server.call("GET", "/metrics")
    text = metrics.decode()
    assert 'synth_jobs{status="succeeded"}' in text and "synth_llm_rate_limited_total" in text
    kept_total = next(ln for ln in text.splitlines() if ln.startswith("synth_records_kept_total"))
    assert float(kept_total.split()[1]) >= 250


def test_recipes_health_and_openapi(server: Server) -> None:
    status, body = server.json("GET", "/v1/recipes")
    assert status == 200 and "card-transactions" in [r["name"] for r in body["recipes"]]
    assert server.json("GET", "/healthz")[1]["ok"] is True
    status, doc = server.json("GET", "/openapi.json")
    assert doc["openapi"].startswith("3.") and "/v1/jobs/{id}/records" in doc["paths"]
    req = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert req["schema"]["required"] == ["recipe", "n"]


def test_cancel_stops_the_job_process(server: Server) -> None:
    job = submit(server, {"recipe": "card-transactions", "n": BIG})
    running = server.wait_for(job["id"], lambda j: j["progress"]["kept"] > 0)
    pid = running["pid"]
    assert pid and alive(pid)
    done = cancel(server, job["id"])
    assert done["progress"]["kept"] < BIG
    assert not alive(pid)
    status, body = server.json("POST", f"/v1/jobs/{job['id']}/cancel", {})
    assert status == 409 and "cancelled" in body["error"]
    # Records written before the cancel stay readable.
    status, headers, _ = server.call("GET", f"/v1/jobs/{job['id']}/records?limit=5")
    assert status == 200 and int(headers["x-count"]) == 5


@pytest.mark.parametrize(
    ("body", "raw", "ctype", "status", "says"),
    [
        (None, b"{not json", "application/json", 400, "not valid JSON"),
        ({"recipe": "card-transactions"}, None, None, 400, "'n' is a required property"),
        ({"recipe": "card-transactions", "n": "10"}, None, None, 400, "$.n: '10' is not of type"),
        ({"recipe": "card-transactions", "n": 0}, None, None, 400, "$.n: 0 is less than"),
        ({"recipe": "card-transactions", "n": 5, "rm": 1}, None, None, 400, "'rm' was unexpected"),
        ({"recipe": "card-transactions", "n": 5, "settings": {"nope": 1}}, None, None, 400,
         "no setting 'nope'"),
        (None, b"n=5", "application/x-www-form-urlencoded", 415, "JSON"),
        ({"recipe": "x" * 5000, "n": 1}, None, None, 413, "too large"),
        ({"recipe": "no-such-recipe", "n": 1}, None, None, 404, "no recipe named"),
    ],
)  # fmt: skip
def test_bad_bodies_get_clear_errors(
    server: Server, body: object, raw: bytes | None, ctype: str | None, status: int, says: str
) -> None:
    headers = {"Content-Type": ctype} if ctype else None
    code, resp_headers, data = server.call("POST", "/v1/jobs", body, raw=raw, headers=headers)
    assert code == status, data
    assert resp_headers["content-type"].startswith("application/json")
    err = json.loads(data)
    assert says in err["error"] + " ".join(err["details"])


@pytest.mark.parametrize(
    "name", ["../recipes/card-transactions", "../../etc/passwd", "/etc/passwd", "..", "a/b",
             "card-transactions/../../x", "%2e%2e%2fsecrets", "~root"],
)  # fmt: skip
def test_recipe_names_cannot_escape_recipes(server: Server, name: str) -> None:
    status, err = server.json("POST", "/v1/jobs", {"recipe": name, "n": 1})
    assert status in (400, 404), err
    assert "recipe" in err["error"] + " ".join(err["details"])


def test_recipe_symlinked_out_of_recipes_is_refused(tmp_path: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (tmp_path / "secret.yaml").write_text("steps: [{use: faker, template: x}]\n")
    (recipes / "evil.yaml").symlink_to(tmp_path / "secret.yaml")
    with pytest.raises(RequestError) as exc:
        recipe_file("evil", Policy(recipes_dir=recipes, project_root=tmp_path))
    assert exc.value.status == 404


@pytest.mark.parametrize(
    ("recipe", "says"),
    [
        ({"steps": [{"use": "faker", "template": "/etc/passwd"}]}, "outside the allowed"),
        ({"steps": [{"use": "faker", "template": "../../../etc/shadow.yaml"}]}, "outside"),
        ({"settings": {"t": "/root/x.yaml"},
          "steps": [{"use": "faker", "template": "${t}"}]}, "outside the allowed"),
        ({"steps": [{"use": "read", "path": "~/.ssh/id_rsa"}]}, "outside the allowed"),
        ({"steps": [{"use": "faker", "template": "card-transactions"},
                    {"use": "prompt", "prompt": "{{ ''.__class__.__mro__ }}"}]}, "not allowed"),
        ({"steps": [{"use": "faker", "template": "card-transactions"},
                    {"use": "prompt", "prompt": "{{ x|attr('c') }}"}]}, "not allowed"),
    ],
)  # fmt: skip
def test_inline_recipes_cannot_reach_outside(server: Server, recipe: dict, says: str) -> None:
    status, err = server.json("POST", "/v1/jobs", {"recipe": recipe, "n": 1})
    assert status == 400, err
    assert says in err["error"] + " ".join(err["details"])


def test_inline_recipe_runs(server: Server) -> None:
    recipe = {"name": "inline-tx", "steps": [{"use": "faker", "template": "card-transactions"}],
              "verify": ["card-transaction-schema"]}  # fmt: skip
    job = submit(server, {"recipe": recipe, "n": 20, "seed": 2})
    done = server.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"))
    assert done["status"] == "succeeded" and done["progress"]["kept"] == 20
    assert done["recipe"] == "inline"


def test_auth_missing_wrong_right(tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", token=TOKEN).start()
    try:
        status, headers, body = srv.call("GET", "/v1/jobs", token="")
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert srv.call("GET", "/v1/jobs", token="x" * len(TOKEN))[0] == 401
        assert srv.call("GET", "/v1/jobs", token=TOKEN[:-1])[0] == 401
        assert srv.call("GET", "/v1/jobs")[0] == 200
        assert (
            srv.call("POST", "/v1/jobs", {"recipe": "card-transactions", "n": 1}, token="")[0]
            == 401
        )
        assert srv.call("GET", "/metrics", token="")[0] == 401
        assert srv.call("GET", "/healthz", token="")[0] == 200  # liveness probes carry no token
        # The dashboard trades the token for a cookie that is not the token.
        status, headers, _ = srv.call("POST", "/v1/session", {"token": "wrong"}, token="")
        assert status == 401
        status, headers, _ = srv.call("POST", "/v1/session", {"token": TOKEN}, token="")
        assert status == 204 and "HttpOnly" in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert TOKEN not in cookie
        assert srv.call("GET", "/v1/jobs", token="", headers={"Cookie": cookie})[0] == 200
        srv.call("GET", "/v1/jobs", token="wrong-token-attempt-123")
        job = submit(
            srv, {"recipe": "card-transactions", "n": 10, "overrides": {"locale": "de_DE"}}
        )
        done = srv.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "succeeded" and done["settings"] == {"locale": "de_DE"}
    finally:
        srv.stop()
    assert TOKEN not in srv.log()
    for path in (tmp_path / "state").rglob("*"):  # job logs, run dirs, the job store
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(("host", "token"), [("0.0.0.0", None), ("::", None), ("0.0.0.0", "short")])
def test_refuses_to_listen_beyond_loopback_without_a_token(
    tmp_path: Path, host: str, token: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNTH_TOKEN"}
    if token:
        env["SYNTH_TOKEN"] = token
    cmd = [sys.executable, "-m", "synth", "serve", "--host", host, "--port", "0"]
    cmd += ["--state-dir", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "SYNTH_TOKEN" in proc.stderr and "Traceback" not in proc.stderr
    assert "serving on" not in proc.stdout


def test_concurrent_job_limit_answers_429(tmp_path: Path) -> None:
    srv = Server(tmp_path / "state", args=("--max-jobs", "1")).start()
    try:
        first = submit(srv, {"recipe": "card-transactions", "n": BIG})
        status, headers, body = srv.call(
            "POST", "/v1/jobs", {"recipe": "card-transactions", "n": 5}
        )
        assert status == 429 and int(headers["retry-after"]) > 0
        assert "too many active jobs" in json.loads(body)["error"]
        cancel(srv, first["id"])
        submit(srv, {"recipe": "card-transactions", "n": 5})  # a slot is free again
    finally:
        srv.stop()


def test_sigkill_mid_job_then_restart_completes_exactly_n(tmp_path: Path) -> None:
    n = 10_000
    state = tmp_path / "state"
    first = Server(state).start()
    job = submit(first, {"recipe": "card-transactions", "n": n, "seed": 5})
    running = first.wait_for(job["id"], lambda j: j["progress"]["kept"] > 0)
    child = running["pid"]
    first.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the job process outlived the killed service"
    kept_at_kill = json.loads((state / "runs" / job["id"] / "manifest.json").read_text())
    assert kept_at_kill["counts"]["kept"] < n, "the job finished before the kill"

    second = Server(state).start()
    try:
        done = second.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"))
        assert done["status"] == "succeeded", done
        assert done["starts"] == 2 and done["progress"]["kept"] == n
        data = (state / "runs" / job["id"] / "data.jsonl").read_bytes().splitlines()
        assert len(data) == n and len({json.loads(x)["id"] for x in data}) == n
        assert "resuming after a restart" in second.log()
    finally:
        second.stop()


def test_sigterm_stops_gracefully_and_keeps_the_job(tmp_path: Path) -> None:
    state = tmp_path / "state"
    srv = Server(state).start()
    job = submit(srv, {"recipe": "card-transactions", "n": BIG})
    child = srv.wait_for(job["id"], lambda j: j["progress"]["kept"] > 0)["pid"]
    assert srv.stop(signal.SIGTERM) == 0
    assert not alive(child)
    again = Server(state).start()
    try:
        resumed = again.wait_for(job["id"], lambda j: j["status"] == "running" and j["starts"] == 2)
        cancel(again, resumed["id"])
    finally:
        again.stop()


def test_hundreds_of_concurrent_polls_while_a_job_runs(server: Server) -> None:
    import aiohttp

    job = submit(server, {"recipe": "card-transactions", "n": BIG})
    server.wait_for(job["id"], lambda j: j["progress"]["kept"] > 0)
    url = f"{server.url}/v1/jobs/{job['id']}"

    async def storm() -> list[int]:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def poller() -> list[int]:
                codes = []
                for _ in range(5):
                    async with session.get(url) as resp:
                        body = await resp.json()
                        codes.append(resp.status if body["id"] == job["id"] else -1)
                return codes

            results = await asyncio.gather(*(poller() for _ in range(300)))
        return [c for r in results for c in r]

    codes = asyncio.run(storm())
    assert len(codes) == 1500 and set(codes) == {200}
    after = server.wait_for(job["id"], lambda j: True)
    assert after["status"] == "running"  # the job kept going through the storm
    cancel(server, job["id"])
