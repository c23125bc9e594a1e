"""Who may call the service, and the headers every answer carries.

A bearer token (`SYNTH_TOKEN`), compared in constant time, never logged. The dashboard
cannot send a header on a plain link, so it trades the token for an HttpOnly,
SameSite=Strict cookie holding an HMAC of it (never the token itself). Errors are JSON,
`{"error": what, "details": [...]}`, whatever raised them.

A browser is the attack surface even on loopback: any page it shows can post to
127.0.0.1, and a rebinding DNS name can make a page's own origin point there. So a
state-changing request must be JSON (a cross-origin page cannot send that without a CORS
preflight, which is never granted) and must not come from another origin (`Origin`,
`Sec-Fetch-Site`; clients that send neither, like curl, are fine); and without a token,
only loopback host names are answered.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from synth.service.spec import RequestError

COOKIE = "synth_session"
# Readable without a token: liveness, and the dashboard's shell (it holds no data).
PUBLIC = frozenset({"/", "/healthz", "/v1/session", "/static/dashboard.js", "/favicon.ico"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_SITE_FETCH = frozenset({"same-origin", "none"})  # `none`: the user typed it
log = logging.getLogger("synth.service")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host(value: str) -> tuple[str, int | None]:
    """`host[:port]` (a `Host` header or a URL's netloc) -> (lower-case host, port)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = value.rpartition(":")
        if not sep or ":" in host:  # no port, or a bare IPv6 address
            host, port = value, ""
    return host, int(port) if port.isdigit() else None


def loopback_host(value: str) -> bool:
    """A `Host` header naming this machine: localhost, 127.x.y.z or [::1], any port."""
    host, _ = split_host(value)
    return bool(host) and is_loopback(host)


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's `Origin` is the origin this request was sent to (`host`)."""
    if origin == "null":
        return False
    try:
        parts = urlsplit(origin)
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    default = 443 if parts.scheme == "https" else 80
    want_host, want_port = split_host(host)
    return (parts.hostname.lower(), origin_port or default) == (want_host, want_port or default)


def refusal(request: web.Request, token: str | None) -> RequestError | None:
    """Why a request is refused before auth: a foreign Host without a token (DNS
    rebinding), or a state change that is not JSON or comes from another origin (CSRF)."""
    host = request.headers.get("Host")
    if not token and host is not None and not loopback_host(host):
        return RequestError(
            421,
            "this service answers only loopback host names",
            [
                f"Host: {host[:100]!r} is not localhost, 127.0.0.1 or [::1]",
                "without SYNTH_TOKEN only loopback names are served (a rebinding DNS name "
                "could otherwise read it from a web page); set SYNTH_TOKEN to serve others",
            ],
        )
    if request.method not in UNSAFE_METHODS:
        return None
    if request.content_type != "application/json":
        return RequestError(
            415,
            "a state-changing request must be JSON",
            ["send `Content-Type: application/json` (an empty body `{}` will do)"],
        )
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in SAME_SITE_FETCH:
        return RequestError(403, "cross-site request refused", [f"Sec-Fetch-Site: {site[:50]!r}"])
    origin = request.headers.get("Origin")
    if origin is not None and not same_origin(origin, host or request.host):
        return RequestError(
            403,
            "cross-origin request refused",
            [f"Origin {origin[:100]!r} is not this service's origin; use the dashboard it serves"],
        )
    return None


class LoginThrottle:
    """At most `failures` wrong tokens per client per `window_s`: a token cannot be
    guessed through `/v1/session` at network speed. Memory is bounded by `max_clients`."""

    def __init__(
        self, *, failures: int = 5, window_s: float = 60.0, max_clients: int = 10_000
    ) -> None:
        self.failures, self.window_s, self.max_clients = failures, window_s, max_clients
        self._seen: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again (0: now)."""
        times = self._recent(client)
        if len(times) < self.failures:
            return 0.0
        return max(0.0, times[0] + self.window_s - time.monotonic())

    def failed(self, client: str) -> None:
        if client not in self._seen and len(self._seen) >= self.max_clients:
            self._seen.pop(next(iter(self._seen)))
        self._recent(client).append(time.monotonic())

    def _recent(self, client: str) -> deque[float]:
        times = self._seen.setdefault(client, deque(maxlen=self.failures))
        while times and times[0] + self.window_s <= time.monotonic():
            times.popleft()
        return times


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
            refused = refusal(request, token)
            if refused is not None:
                raise refused
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
            retry = {"Retry-After": str(exc.retry_after or 5)} if exc.status == 429 else None
            resp = error_response(exc.status, exc.message, exc.details, headers=retry)
        except web.HTTPRequestEntityTooLarge as exc:
            resp = error_response(413, "request body too large", [exc.text or ""])
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = error_response(exc.status, exc.reason, [], headers=exc.headers)
        except ConnectionError:  # the client went away: aiohttp's to handle
            raise
        except RecursionError:  # a body nested past what the parsers handle
            resp = error_response(400, "the request is nested too deeply", [])
        except Exception:  # never a traceback or a server path in an answer
            log.exception("%s %s: internal error", request.method, request.path)
            resp = error_response(500, "internal error", ["the service log has the details"])
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
