"""Who may call the service, and the headers every answer carries.

A bearer token (`SYNTH_TOKEN`), compared in constant time, never logged. The dashboard
cannot send a header on a plain link, so it trades the token for an HttpOnly,
SameSite=Strict cookie holding an HMAC of it (never the token itself). Errors are JSON,
`{"error": what, "details": [...]}`, whatever raised them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from synth.service.spec import RequestError

COOKIE = "synth_session"
# Readable without a token: liveness, and the dashboard's shell (it holds no data).
PUBLIC = frozenset({"/", "/healthz", "/v1/session", "/static/dashboard.js", "/favicon.ico"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def session_value(token: str) -> str:
    return hmac.new(token.encode(), b"synth-session-v1", hashlib.sha256).hexdigest()


def authorized(request: web.Request, token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return hmac.compare_digest(value.strip().encode(), token.encode())
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    return hmac.compare_digest(cookie.encode(), session_value(token).encode())


# -- middlewares -------------------------------------------------------------------------


def middleware(token: str | None) -> Any:
    """Auth, then JSON errors and security headers. One middleware, not two: it runs on
    every status poll, and a poll storm pays for each layer."""

    @web.middleware
    async def mw(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            if token and request.path not in PUBLIC and not authorized(request, token):
                resp: web.StreamResponse = error_response(
                    401,
                    "missing or wrong bearer token",
                    ["send `Authorization: Bearer $SYNTH_TOKEN`"],
                    headers={"WWW-Authenticate": 'Bearer realm="synth"'},
                )
            else:
                resp = await handler(request)
        except RequestError as exc:
            retry = {"Retry-After": "5"} if exc.status == 429 else None
            resp = error_response(exc.status, exc.message, exc.details, headers=retry)
        except web.HTTPRequestEntityTooLarge as exc:
            resp = error_response(413, "request body too large", [exc.text or ""])
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = error_response(exc.status, exc.reason, [], headers=exc.headers)
        if not resp.prepared:  # a streamed body set its own before sending them
            for k, v in SECURITY_HEADERS.items():
                resp.headers.setdefault(k, v)
        return resp

    return mw


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def error_response(
    status: int, message: str, details: list[str], headers: Any = None
) -> web.Response:
    body = {"error": message, "details": [d for d in details if d]}
    resp = web.json_response(body, status=status)
    for k, v in (headers or {}).items():
        if k.lower() in ("retry-after", "www-authenticate", "allow"):
            resp.headers[k] = v
    return resp


class QuietAccessLogger(AbstractAccessLogger):
    """Logs what changes state and what fails; a poll storm of 200 OK GETs stays quiet.
    Headers are never logged, so neither is a token."""

    def log(self, request: Any, response: Any, elapsed: float) -> None:
        if request.method in ("GET", "HEAD") and response.status < 400:
            return
        self.logger.info(
            '%s "%s %s" %s %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            elapsed * 1000,
        )
