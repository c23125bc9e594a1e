"""`synth serve`: the HTTP API (aiohttp) other systems submit jobs to.

The event loop only answers requests. Jobs run in child processes (`supervisor.py`), job
state lives in SQLite (`jobs.py`), request bodies are checked by `jobspec.py`, and a status
poll is served from memory, so hundreds of pollers cost the running job little.

Security: a bearer token (`SYNTH_TOKEN`) is required whenever the service listens on
anything but loopback, and it refuses to start otherwise (`webauth.py` checks the token
and adds the security headers). Bodies are size-limited and validated by JSON Schema.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from synth.errors import ConfigError
from synth.service.auth import (
    COOKIE,
    SECURITY_HEADERS,
    LoginThrottle,
    is_loopback,
    middleware,
    session_value,
)
from synth.service.jobs import FINAL, SUCCEEDED, Job, JobStore
from synth.service.paging import LineIndex
from synth.service.spec import (
    Policy,
    RequestError,
    build_spec,
    list_recipes,
    new_job_id,
    parse_body,
)
from synth.service.supervisor import Busy, Supervisor

log = logging.getLogger("synth.service")
LIVE_REPORT_TTL_S = 10.0
MAX_BODY_DEPTH = 64  # arrays and objects in a request body; an inline recipe needs ~10
_NEW_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


@dataclass(frozen=True, kw_only=True)
class ServiceConfig:
    state_dir: Path
    project_root: Path
    recipes_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    allow_roots: tuple[Path, ...] = ()
    max_jobs: int = 2
    max_body: int = 256 * 1024
    nice: int = 5  # how far the event loop yields the CPU to running jobs
    secure_cookie: bool = False  # the session cookie only over HTTPS (behind a TLS proxy)

    def check(self) -> None:
        """Refuse to expose the service without a token."""
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"refusing to listen on {self.host} without a token",
                path="--host",
                expected="a loopback address (127.0.0.1, ::1, localhost), or SYNTH_TOKEN set",
                found=self.host,
                fix=f"export SYNTH_TOKEN=$({_NEW_TOKEN})",
            )
        if self.token is not None and len(self.token) < 16:
            raise ConfigError(
                "SYNTH_TOKEN is too short",
                path="SYNTH_TOKEN",
                expected="at least 16 characters",
                found=f"{len(self.token)} characters",
                fix=f"use a random token, e.g. from `{_NEW_TOKEN}`",
            )

    @property
    def policy(self) -> Policy:
        return Policy(
            recipes_dir=self.recipes_dir,
            project_root=self.project_root,
            allow_roots=self.allow_roots,
        )


SUP = web.AppKey("supervisor", Supervisor)
CONF = web.AppKey("config", ServiceConfig)
INDEXES = web.AppKey("indexes", dict)
LOCKS = web.AppKey("report_locks", dict)
VIEWS = web.AppKey("views", dict)  # job id -> its JSON, dropped whenever the job changes
THROTTLE = web.AppKey("login_throttle", LoginThrottle)


# -- the app -----------------------------------------------------------------------------


def create_app(config: ServiceConfig) -> web.Application:
    config.check()
    app = web.Application(
        client_max_size=config.max_body,
        middlewares=[middleware(config.token)],
    )
    store = JobStore(config.state_dir / "jobs.sqlite")
    app[CONF] = config
    app[SUP] = Supervisor(
        store,
        state_dir=config.state_dir,
        project_root=config.project_root,
        max_jobs=config.max_jobs,
        nice=config.nice,
    )
    app[INDEXES] = {}
    app[LOCKS] = {}
    app[THROTTLE] = LoginThrottle()
    views: dict[str, bytes] = {}
    app[VIEWS] = views

    def forget(job: Job) -> None:
        views.pop(job.id, None)

    app[SUP].on_change = forget

    async def on_startup(app: web.Application) -> None:
        resumed = await app[SUP].load()
        for job in resumed:
            log.info("job %s: resuming after a restart", job.id)

    async def on_shutdown(app: web.Application) -> None:
        await app[SUP].shutdown()

    async def on_cleanup(app: web.Application) -> None:
        store.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    r = app.router
    r.add_post("/v1/jobs", submit)
    r.add_get("/v1/jobs", list_jobs)
    r.add_get("/v1/jobs/{id}", get_job)
    r.add_get("/v1/jobs/{id}/records", get_records)
    r.add_get("/v1/jobs/{id}/report", get_report)
    r.add_post("/v1/jobs/{id}/cancel", cancel_job)
    r.add_get("/v1/recipes", recipes)
    r.add_get("/healthz", healthz)
    r.add_get("/metrics", metrics)
    r.add_get("/openapi.json", openapi)
    r.add_post("/v1/session", login)
    r.add_get("/", dashboard)
    r.add_get("/static/dashboard.js", dashboard_js)
    return app


# -- handlers ----------------------------------------------------------------------------


async def submit(request: web.Request) -> web.Response:
    config, sup = request.app[CONF], request.app[SUP]
    if request.content_type != "application/json":
        raise RequestError(415, "send the job as JSON", ["Content-Type: application/json"])
    raw = await request.read()  # over client_max_size: 413
    body = parse_body(raw, MAX_BODY_DEPTH)
    if sum(j.active for j in sup.jobs.values()) >= sup.max_jobs:
        raise _busy(sup)
    job_id = new_job_id()
    job_dir = config.state_dir / "jobs" / job_id
    spec = await asyncio.to_thread(build_spec, body, config.policy, job_dir)
    job = Job(id=job_id, spec=spec, run_dir=str(config.state_dir / "runs" / job_id))
    try:
        await sup.submit(job)
    except Busy:
        raise _busy(sup) from None
    log.info("job %s: accepted (%s, n=%d)", job.id, spec["recipe"], spec["n"])
    return web.json_response(job.view(), status=201, headers={"Location": f"/v1/jobs/{job.id}"})


def _busy(sup: Supervisor) -> RequestError:
    return RequestError(
        429, "too many active jobs", [f"at most {sup.max_jobs} at once; retry when one ends"]
    )


async def list_jobs(request: web.Request) -> web.Response:
    jobs = list(request.app[SUP].jobs.values())
    status = request.query.get("status")
    if status:
        jobs = [j for j in jobs if j.status == status]
    limit = _int_query(request, "limit", 100, 1, 1000)
    jobs.sort(key=lambda j: j.created_at, reverse=True)
    return web.json_response({"jobs": [j.view() for j in jobs[:limit]], "total": len(jobs)})


async def get_job(request: web.Request) -> web.Response:
    """The hot path of a poll storm: memory only, the JSON cached until the job changes."""
    job = _job(request)
    views = request.app[VIEWS]
    body = views.get(job.id)
    if body is None:
        body = views[job.id] = json.dumps(job.view()).encode()
    return web.Response(body=body, content_type="application/json")


async def cancel_job(request: web.Request) -> web.Response:
    job = _job(request)
    if job.status in FINAL:
        raise RequestError(409, f"the job already {job.status}", [])
    await request.app[SUP].cancel(job)
    return web.json_response(job.view(), status=202)


async def get_records(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    offset = _int_query(request, "offset", 0, 0, 10**12)
    limit = _int_query(request, "limit", 1000, 1, 10_000)
    index = request.app[INDEXES].setdefault(job.id, LineIndex(Path(job.run_dir) / "data.jsonl"))
    # Only checkpointed bytes: a resumed run may cut back what came after them.
    limit_bytes = int(job.progress.get("data_bytes", 0)) if job.active else None
    available = await asyncio.to_thread(index.refresh, limit_bytes)
    count = max(0, min(limit, available - offset))
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson; charset=utf-8",
            "X-Offset": str(offset),
            "X-Count": str(count),
            "X-Next-Offset": str(offset + count),
            "X-Available": str(available),
            "X-Job-Status": job.status,
            **SECURITY_HEADERS,
        }
    )
    await resp.prepare(request)
    chunks = index.read(offset, count)
    while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def get_report(request: web.Request) -> web.StreamResponse:
    job = _job(request)
    final = Path(job.run_dir) / "report.html"
    if job.status == SUCCEEDED and final.is_file():
        path = final
    else:
        path = await _live_report(request.app, job)
    from synth.report.browse import script

    return web.FileResponse(
        path,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            # Record text is untrusted: the only script that runs in a report, even a
            # served one, is the record browser's own, pinned by its hash.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            f"img-src data:; script-src {script()[1]}; sandbox allow-scripts",
        },
    )


async def _live_report(app: web.Application, job: Job) -> Path:
    """A snapshot of a running (or failed) job, written by a child process so the
    charting work never runs on the event loop. At most one per TTL per job."""
    if not (Path(job.run_dir) / "manifest.json").is_file():
        raise RequestError(404, "no report yet", ["the job has not written anything yet"])
    out = app[CONF].state_dir / "jobs" / job.id / "live-report.html"
    lock = app[LOCKS].setdefault(job.id, asyncio.Lock())
    async with lock:
        fresh = out.is_file() and time.time() - out.stat().st_mtime < LIVE_REPORT_TTL_S
        if not fresh or (job.status in FINAL and out.stat().st_mtime < (job.finished_at or 0)):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "synth",
                "report",
                job.run_dir,
                "--out",
                str(out),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
            if proc.returncode != 0 or not out.is_file():
                raise RequestError(500, "the report could not be written", [err.decode()[-500:]])
    return out


async def recipes(request: web.Request) -> web.Response:
    policy = request.app[CONF].policy

    def describe() -> list[dict[str, Any]]:
        from synth.content import load_yaml  # refuses alias bombs and deep nesting

        out = []
        for name in list_recipes(policy):
            file = policy.recipes_dir / f"{name}.yaml"
            try:
                raw = load_yaml(file) or {}
            except ConfigError:
                raw = {}
            if not isinstance(raw, dict):
                raw = {}
            out.append(
                {
                    "name": name,
                    "description": " ".join(str(raw.get("description", "")).split()),
                    "model": raw.get("model"),
                    "settings": raw.get("settings") or {},
                }
            )
        return out

    return web.json_response({"recipes": await asyncio.to_thread(describe)})


async def healthz(request: web.Request) -> web.Response:
    from synth.runner.rundir import synth_version

    sup = request.app[SUP]
    active = sum(j.active for j in sup.jobs.values())
    return web.json_response({"ok": True, "version": synth_version(), "active_jobs": active})


async def metrics(request: web.Request) -> web.Response:
    from synth.service.metrics import render

    jobs = list(request.app[SUP].jobs.values())  # a snapshot; files are read off the loop
    return web.Response(
        text=await asyncio.to_thread(render, jobs),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


async def openapi(request: web.Request) -> web.Response:
    from synth.runner.rundir import synth_version
    from synth.service.openapi import document

    return web.json_response(document(synth_version()))


async def login(request: web.Request) -> web.Response:
    config = request.app[CONF]
    token = config.token
    if token is None:
        return web.Response(status=204)  # loopback without a token: nothing to log in to
    throttle, client = request.app[THROTTLE], request.remote or "unknown"
    wait = throttle.retry_after(client)
    if wait > 0:
        raise RequestError(
            429,
            "too many wrong tokens",
            [f"at most {throttle.failures} failed sign-ins per {throttle.window_s:g} s per client"],
            retry_after=math.ceil(wait),
        )
    try:
        given = str((await request.json()).get("token", ""))
    except (ValueError, AttributeError):
        given = ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        throttle.failed(client)
        raise RequestError(401, "wrong token", [])
    resp = web.Response(status=204)
    resp.set_cookie(
        COOKIE,
        session_value(token),
        httponly=True,
        samesite="Strict",
        path="/",
        secure=config.secure_cookie,
    )
    return resp


async def dashboard(request: web.Request) -> web.Response:
    from synth.report.run import render

    html = render("dashboard.html", auth=bool(request.app[CONF].token))
    return web.Response(
        text=html,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
            "connect-src 'self'; style-src 'unsafe-inline'; img-src data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        },
    )


async def dashboard_js(request: web.Request) -> web.Response:
    text = resources.files("synth").joinpath("templates_html", "dashboard.js").read_text()
    return web.Response(text=text, content_type="application/javascript")


# -- helpers -----------------------------------------------------------------------------


def _job(request: web.Request) -> Job:
    job = request.app[SUP].jobs.get(request.match_info["id"])
    if job is None:
        raise RequestError(404, "no such job", [request.match_info["id"][:64]])
    return job


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise RequestError(400, f"?{name} must be an integer", [f"got {text[:50]!r}"]) from None
    if not lo <= value <= hi:
        raise RequestError(400, f"?{name} must be between {lo} and {hi}", [f"got {value}"])
    return value


__all__ = ["ServiceConfig", "create_app"]
