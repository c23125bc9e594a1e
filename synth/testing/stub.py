"""`StubServer`: a loopback OpenAI-compatible chat endpoint that misbehaves on request.

Latency and jitter, 429 with `Retry-After` above a concurrency or RPM limit, a rate of
500s, truncated JSON, a 401 that quotes a wrong key, 400s for refused parameters, and
`/stats`. LLM tests drive the real client against it (`model="openai/<name>"`,
`api_base=stub.url`), so retries, rate limits and caching are tested end to end.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Answer = Callable[[dict[str, Any]], str]
# (request, answer text) -> per generated token, {token: logprob}: the token itself first,
# then its alternatives.
Logprobs = Callable[[dict[str, Any], str], Sequence[Mapping[str, float]]]


def _question(request: dict[str, Any]) -> str:
    """The first user message: what was asked (a re-ask appends more, the question stays)."""
    first = next(
        (m.get("content", "") for m in request.get("messages", []) if m.get("role") == "user"), ""
    )
    return first if isinstance(first, str) else json.dumps(first)


def echo_answer(request: dict[str, Any]) -> str:
    """Default stub answer, a pure function of the request so tests can check every row:
    `{"echo": <first user message>}` when JSON was asked for (a `response_format`, or
    "JSON" anywhere in the messages), else `echo: <first user message>`."""
    question = _question(request)
    asked_json = any(
        "json" in str(m.get("content", "")).lower() for m in request.get("messages", [])
    )
    if request.get("response_format") or asked_json:
        return json.dumps({"echo": question})
    return f"echo: {question}"


def echo_logprobs(request: dict[str, Any], text: str) -> list[dict[str, float]]:
    """Default stub logprobs, a pure function of the request and the answer: one token a
    word of the answer (with the whitespace before it), the word first with a probability
    in [0.5, 0.95) drawn from a hash of (question, position, word), then two alternatives
    sharing most of the rest; "yes" and "no" are each other's first alternative."""
    question = _question(request)
    out = []
    for i, token in enumerate(re.findall(r"\s*\S+", text)):
        digest = hashlib.sha256(f"{question}\0{i}\0{token}".encode()).digest()
        p = 0.5 + 0.45 * int.from_bytes(digest[:4], "big") / 2**32
        lead, word = token[: len(token) - len(token.lstrip())], token.strip()
        other = {"yes": "no", "no": "yes"}.get(word.lower(), word + "s")
        alts = {token: math.log(p)}
        alts.setdefault(lead + other, math.log((1 - p) * 0.7))
        alts.setdefault(lead + "\u2026", math.log((1 - p) * 0.2))
        out.append(alts)
    return out


@dataclass
class StubStats:
    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    bad_json: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    prompts: collections.Counter[str] = field(default_factory=collections.Counter)
    clients: collections.Counter[str] = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "429": self.rate_limited,
            "500": self.server_errors,
            "bad_json": self.bad_json,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "distinct_prompts": len(self.prompts),  # answered ones, by first user message
            # Requests per client library: the User-Agent's first product ("synth", ...).
            "clients": dict(self.clients),
        }


class StubServer:
    """Loopback OpenAI-compatible `/v1/chat/completions` with injectable faults.

    `async with StubServer(latency=0.2, max_inflight=50) as stub:` then use `stub.url` as
    `api_base`. Faults are drawn from a seeded RNG in arrival order, so a retried request
    can succeed; answers are a function of the request (`answer`, default `echo_answer`),
    and so are their token logprobs when a request asks (`logprobs`, default
    `echo_logprobs`). `refuse_params` names parameters answered with a 400, like an
    OpenAI-compatible server that does not know them."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        jitter: float = 0.0,
        max_inflight: int | None = None,
        rpm: int | None = None,
        rpm_window: float = 60.0,
        retry_after: float = 1.0,
        error_rate: float = 0.0,
        bad_json_rate: float = 0.0,
        cut_at_max_tokens: bool = False,
        answer: Answer = echo_answer,
        logprobs: Logprobs = echo_logprobs,
        refuse_params: Sequence[str] = (),
        api_key: str | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency, self.jitter = latency, jitter
        self.max_inflight, self.rpm, self.retry_after = max_inflight, rpm, retry_after
        self.rpm_window = rpm_window  # tests shrink the window: rpm * window / 60 per window
        self.error_rate, self.bad_json_rate = error_rate, bad_json_rate
        # Like a real server: an answer longer than the request's max_tokens (4 characters a
        # token, as `usage` counts them) is cut there, with finish_reason "length".
        self.cut_at_max_tokens = cut_at_max_tokens
        self.answer = answer
        self.logprobs, self.refuse_params = logprobs, tuple(refuse_params)
        self.api_key = api_key  # when set, any other bearer token gets a 401 that echoes it
        self.host, self.port = host, port
        self.stats = StubStats()
        self._rng = random.Random(seed)
        self._window: collections.deque[float] = collections.deque()
        self._runner: Any = None

    @property
    def url(self) -> str:
        """The `api_base` to give litellm (`http://127.0.0.1:<port>/v1`)."""
        return f"http://{self.host}:{self.port}/v1"

    async def __aenter__(self) -> StubServer:
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/stats/reset", self._reset)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.2
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def reset(self) -> None:
        self.stats = StubStats()
        self._window.clear()

    # -- handlers

    async def _stats(self, request: Any) -> Any:
        from aiohttp import web

        out = self.stats.as_dict()
        if request.query.get("prompts"):  # which prompts were answered, and how often
            out["prompts"] = dict(self.stats.prompts)
        return web.json_response(out)

    async def _reset(self, request: Any) -> Any:
        from aiohttp import web

        self.reset()
        return web.json_response({"reset": True})

    def _too_many(self) -> bool:
        if self.max_inflight is not None and self.stats.in_flight >= self.max_inflight:
            return True
        if self.rpm is not None:
            now = time.monotonic()
            while self._window and now - self._window[0] >= self.rpm_window:
                self._window.popleft()
            if len(self._window) >= self.rpm * self.rpm_window / 60.0:
                return True
            self._window.append(now)
        return False

    async def _chat(self, request: Any) -> Any:
        from aiohttp import web

        s = self.stats
        s.requests += 1
        s.clients[request.headers.get("User-Agent", "-").split("/", 1)[0]] += 1
        body = await request.json()
        if self.api_key is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if given != self.api_key:  # like real providers, quote the key that was sent
                error = {"message": f"Incorrect API key provided: {given}", "type": "auth_error"}
                return web.json_response({"error": error}, status=401)
        if self._too_many():
            s.rate_limited += 1
            headers = {
                "Retry-After": str(max(0, math.ceil(self.retry_after))),
                "retry-after-ms": str(int(self.retry_after * 1000)),
            }
            error = {"message": "rate limited by stub", "type": "rate_limit_error"}
            return web.json_response({"error": error}, status=429, headers=headers)
        refused = [p for p in self.refuse_params if p in body]
        if refused:
            message = f"Unrecognized request argument supplied: {refused[0]}"
            error = {"message": message, "type": "invalid_request_error", "param": refused[0]}
            return web.json_response({"error": error}, status=400)
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        try:
            delay = self.latency + (
                self._rng.uniform(-self.jitter, self.jitter) if self.jitter else 0
            )
            fail = self.error_rate and self._rng.random() < self.error_rate
            garble = self.bad_json_rate and self._rng.random() < self.bad_json_rate
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            s.in_flight -= 1
        if fail:
            s.server_errors += 1
            error = {"message": "injected server error", "type": "server_error"}
            return web.json_response({"error": error}, status=500)
        text = self.answer(body)
        if garble:
            s.bad_json += 1
            text = text[: max(1, len(text) // 2)]
        finish_reason, cap = "stop", body.get("max_tokens")
        if self.cut_at_max_tokens and isinstance(cap, int) and len(text) > 4 * cap:
            text, finish_reason = text[: 4 * cap], "length"
        s.ok += 1
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        s.prompts[_question(body)] += 1
        usage = {
            "prompt_tokens": max(1, prompt_chars // 4),
            "completion_tokens": max(1, len(text) // 4),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
        }
        if body.get("logprobs"):
            choice["logprobs"] = {"content": self._token_logprobs(body, text)}
        return web.json_response(
            {
                "id": f"chatcmpl-stub-{s.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "stub"),
                "choices": [choice],
                "usage": usage,
            }
        )

    def _token_logprobs(self, body: dict[str, Any], text: str) -> list[dict[str, Any]]:
        """OpenAI's `choices[0].logprobs.content`, with the request's `top_logprobs`."""
        top = int(body.get("top_logprobs") or 0)

        def entry(token: str, logprob: float) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        content = []
        for position in self.logprobs(body, text):
            if not position:
                continue
            ranked = sorted(position.items(), key=lambda kv: -kv[1])[:top]
            token, logprob = next(iter(position.items()))
            alts = [entry(t, lp) for t, lp in ranked]
            content.append({**entry(token, logprob), "top_logprobs": alts})
        return content


async def fetch_stats(base_url: str) -> dict[str, Any]:
    """`/stats` of a stub started elsewhere (a subprocess), given its `api_base`."""
    import aiohttp

    root = base_url.rstrip("/").removesuffix("/v1")
    async with aiohttp.ClientSession() as session, session.get(f"{root}/stats") as resp:
        out: dict[str, Any] = await resp.json()
        return out
