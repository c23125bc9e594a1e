"""Issue 19 against a real `synth serve` on loopback: CSRF, DNS rebinding, what errors
may say, and the sign-in's cookie and throttle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_fixtures import Server

TOKEN = "hardening-token-0123456789"
BIG = 5_000_000  # runs until cancelled
NO_JOB = "/v1/jobs/000000000000/cancel"  # refused before the handler, or 404 from it


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`make serve`: loopback, no token. Jobs naming openai/stub-model find a key, so the
    error a test looks for is the one reported (no request reaches the endpoint)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
        mp.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
        srv = Server(tmp_path_factory.mktemp("open"), args=("--max-body-kb", "512")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("tok"), token=TOKEN, args=("--secure-cookie",)).start()
    yield srv
    srv.stop()


def _error(data: bytes) -> str:
    body = json.loads(data)
    return body["error"] + " " + " ".join(body["details"])


# -- 6: CSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
        {"Content-Type": "text/plain"},  # a no-preflight fetch() from any page
        {"Content-Type": "multipart/form-data; boundary=x"},
        {},  # a form post with no body
    ],
)
def test_a_form_post_cannot_cancel(open_server: Server, headers: dict[str, str]) -> None:
    status, _, data = open_server.call("POST", NO_JOB, raw=b"x=1", headers=headers)
    assert status == 415, data
    assert "JSON" in _error(data)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:1"},  # another port of the same host
        {"Origin": "null"},  # a sandboxed iframe or a file: page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_cross_origin_json_post_is_refused(open_server: Server, headers: dict[str, str]) -> None:
    status, _, data = open_server.call("POST", NO_JOB, {}, headers=headers)
    assert status == 403, data
    assert "cross-" in _error(data)
    status, _, data = open_server.call(
        "POST", "/v1/jobs", {"recipe": "card-transactions", "n": 1}, headers=headers
    )
    assert status == 403, data


def test_same_origin_and_non_browser_posts_still_work(open_server: Server) -> None:
    own = {"Origin": open_server.url, "Sec-Fetch-Site": "same-origin"}
    assert open_server.call("POST", NO_JOB, {}, headers=own)[0] == 404  # reached the handler
    assert open_server.call("POST", NO_JOB, {})[0] == 404  # curl: no Origin at all
    localhost = {"Origin": f"http://localhost:{open_server.port}"}
    assert (
        open_server.call(
            "POST", NO_JOB, {}, headers={**localhost, "Host": f"localhost:{open_server.port}"}
        )[0]
        == 404
    )


def test_the_dashboard_cookie_cannot_cancel_from_another_port(token_server: Server) -> None:
    srv = token_server
    status, headers, _ = srv.call("POST", "/v1/session", {"token": TOKEN}, token="")
    assert status == 204
    cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
    status, job = srv.json("POST", "/v1/jobs", {"recipe": "card-transactions", "n": BIG})
    assert status == 201, job
    path = f"/v1/jobs/{job['id']}/cancel"
    evil = {**cookie, "Origin": f"http://127.0.0.1:{srv.port + 1}", "Sec-Fetch-Site": "same-site"}
    assert srv.call("POST", path, {}, token="", headers=evil)[0] == 403
    form = {**cookie, "Content-Type": "application/x-www-form-urlencoded"}
    assert srv.call("POST", path, raw=b"", token="", headers=form)[0] == 415
    assert srv.json("GET", f"/v1/jobs/{job['id']}")[1]["status"] in ("queued", "running")
    # The dashboard itself (same origin, JSON, the cookie) can.
    own = {**cookie, "Origin": srv.url, "Sec-Fetch-Site": "same-origin"}
    assert srv.call("POST", path, {}, token="", headers=own)[0] == 202
    srv.wait_for(job["id"], lambda j: j["status"] == "cancelled")


def test_the_dashboard_script_sends_json() -> None:
    js = (Path(__file__).resolve().parents[2] / "synth/templates_html/dashboard.js").read_text()
    posts = js.split('method: "POST"')[1:]
    assert len(posts) == 3  # sign in, submit, cancel
    for after in posts:
        assert after.lstrip(", ").startswith('headers: { "Content-Type": "application/json" }')


# -- 7: DNS rebinding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["rebind.evil.example", "rebind.evil.example:{port}", "10.0.0.1:{port}", "localhost.evil"],
)
def test_without_a_token_a_foreign_host_name_is_refused(open_server: Server, host: str) -> None:
    hdr = {"Host": host.format(port=open_server.port)}
    for path in ("/v1/jobs", "/", "/v1/recipes"):
        status, _, data = open_server.call("GET", path, headers=hdr)
        assert status == 421, data
        assert "loopback" in _error(data)
        assert b"card-transactions" not in data


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "127.0.0.2", "[::1]:{port}"]
)
def test_loopback_host_names_are_served(open_server: Server, host: str) -> None:
    status, _, data = open_server.call(
        "GET", "/v1/jobs", headers={"Host": host.format(port=open_server.port)}
    )
    assert status == 200, data


def test_with_a_token_any_host_name_is_served(token_server: Server) -> None:
    assert token_server.call("GET", "/v1/jobs", headers={"Host": "synth.example.com"})[0] == 200
    assert token_server.call("GET", "/v1/jobs", token="", headers={"Host": "x.example"})[0] == 401


# -- 9: the session cookie and the sign-in throttle ----------------------------------------


def test_secure_cookie_flag(token_server: Server) -> None:
    status, headers, _ = token_server.call("POST", "/v1/session", {"token": TOKEN}, token="")
    assert status == 204
    flags = [f.strip().lower() for f in headers["set-cookie"].split(";")]
    assert "secure" in flags and "httponly" in flags and "samesite=strict" in flags


def test_secure_cookie_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_SECURE_COOKIE", "1")
    srv = Server(tmp_path, token=TOKEN).start()
    try:
        headers = srv.call("POST", "/v1/session", {"token": TOKEN}, token="")[1]
        assert "secure" in [f.strip().lower() for f in headers["set-cookie"].split(";")]
    finally:
        srv.stop()
    monkeypatch.setenv("SYNTH_SECURE_COOKIE", "0")
    srv = Server(tmp_path, token=TOKEN).start()
    try:
        headers = srv.call("POST", "/v1/session", {"token": TOKEN}, token="")[1]
        assert "secure" not in [f.strip().lower() for f in headers["set-cookie"].split(";")]
    finally:
        srv.stop()


def test_sign_in_failures_are_throttled(tmp_path: Path) -> None:
    srv = Server(tmp_path, token=TOKEN).start()
    try:
        for _ in range(5):
            assert srv.call("POST", "/v1/session", {"token": "guess"}, token="")[0] == 401
        status, headers, data = srv.call("POST", "/v1/session", {"token": "guess"}, token="")
        assert status == 429, data
        assert int(headers["retry-after"]) > 0
        # Locked out means locked out: even the right token waits.
        assert srv.call("POST", "/v1/session", {"token": TOKEN}, token="")[0] == 429
        # The bearer API is unaffected.
        assert srv.call("GET", "/v1/jobs")[0] == 200
    finally:
        srv.stop()


# -- 10: hostile bodies --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 500, 65])
def test_a_deeply_nested_body_is_a_json_400(open_server: Server, depth: int) -> None:
    raw = b'{"recipe": "card-transactions", "n": 1, "settings": {"x": ' + b"[" * depth
    raw += b"]" * depth + b"}}"
    status, headers, data = open_server.call(
        "POST", "/v1/jobs", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert status == 400, data[:300]
    assert headers["content-type"].startswith("application/json")
    assert "nested too deeply" in _error(data) and "line 1, column" in _error(data)


# -- 8: what an error may say -------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
FAKER = {"use": "faker", "template": "card-transactions"}


def test_a_template_payload_through_the_body_settings_is_refused(open_server: Server) -> None:
    payload = "{{ ''.__class__.__mro__ }}"
    own = {"settings": {"p": payload}, "steps": [FAKER, {"use": "prompt", "prompt": "${p}"}]}
    status, err = open_server.json("POST", "/v1/jobs", {"recipe": own, "n": 1})
    assert status == 400 and "not allowed" in " ".join(err["details"]), err
    passed = {"settings": {"p": "hi"}, "steps": [FAKER, {"use": "prompt", "prompt": "${p}"}]}
    for key in ("settings", "overrides"):
        body = {"recipe": passed, "n": 1, "model": "openai/stub-model", key: {"p": payload}}
        status, err = open_server.json("POST", "/v1/jobs", body)
        assert status == 400, err
        assert "unsafe template" in err["error"] and "$.settings.p" in err["details"][0], err


def test_a_render_error_fails_the_job_without_a_traceback_or_a_path(open_server: Server) -> None:
    recipe = {"steps": [FAKER, {"use": "prompt", "prompt": "Say\n{{ range(10**9) | list }}"}]}
    body = {"recipe": recipe, "n": 1, "model": "openai/stub-model"}
    status, job = open_server.json("POST", "/v1/jobs", body)
    assert status == 201, job
    done = open_server.wait_for(job["id"], lambda j: j["status"] not in ("queued", "running"), 120)
    assert done["status"] == "failed", done
    error = done["error"]
    assert "prompt template" in error and "line 2" in error, error
    assert "Traceback" not in error and 'File "' not in error, error
    for secret in (str(ROOT), str(open_server.state_dir), "site-packages"):
        assert secret not in error, error


def test_a_400_names_content_files_without_the_server_path(open_server: Server) -> None:
    body = {"recipe": "card-transactions", "n": 1, "settings": {"locale": "xx_YY"}}
    status, _, data = open_server.call("POST", "/v1/jobs", body)
    assert status == 400, data
    text = data.decode()
    assert "templates/card-transactions.yaml" in text and "xx_YY" in text, text
    assert str(ROOT) not in text and str(open_server.state_dir) not in text, text


# -- 9: a refused inline recipe leaves nothing behind --------------------------------------


def test_a_refused_inline_recipe_leaves_no_folder(open_server: Server) -> None:
    jobs = open_server.state_dir / "jobs"
    before = set(jobs.iterdir()) if jobs.is_dir() else set()
    for recipe in (
        {"steps": [{"use": "no-such-step"}]},
        {"steps": [FAKER], "verify": ["no-such-verifier"]},
    ):
        status, err = open_server.json("POST", "/v1/jobs", {"recipe": recipe, "n": 1})
        assert status == 400 and "does not load" in err["error"], err
        assert "<inline recipe>" in " ".join(err["details"]), err
    after = set(jobs.iterdir()) if jobs.is_dir() else set()
    assert after == before
