"""Admission control: concurrency, AIMD on 429s, RPM pacing, TPM estimate-then-correct."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import wait_none

from synth.llm.client import LLMClient, RetryPolicy
from synth.llm.ratelimit import Limiter, RateLimits
from synth.testing import StubServer


@settings(max_examples=25, deadline=None)
@given(
    limit=st.integers(1, 8), tasks=st.integers(1, 40), hold=st.lists(st.integers(0, 3), min_size=1)
)
def test_in_flight_never_exceeds_the_limit(limit: int, tasks: int, hold: list[int]) -> None:
    async def go() -> int:
        lim = Limiter(RateLimits(max_concurrency=limit))
        peak = 0

        async def one(i: int) -> None:
            nonlocal peak
            ticket = await lim.acquire()
            peak = max(peak, lim.in_flight)
            for _ in range(hold[i % len(hold)]):
                await asyncio.sleep(0)
            lim.release(ticket)

        await asyncio.gather(*(one(i) for i in range(tasks)))
        assert lim.in_flight == 0
        return peak

    assert asyncio.run(go()) <= limit


def test_a_429_halves_the_limit_once_per_episode_then_it_recovers_fast_and_probes_slowly() -> None:
    async def go() -> list[float]:
        lim = Limiter(RateLimits(max_concurrency=40))
        tickets = [await lim.acquire() for _ in range(40)]
        seen = [lim.limit]
        # The server took 20; the other 20 come back 429 (one congestion episode).
        for t in tickets[20:]:
            lim.release(t, rate_limited=True, retry_after=0.05)
        seen.append(lim.limit)  # halved once, not twenty times
        for t in tickets[:20]:
            lim.release(t)
        seen.append(lim.limit)  # still in the Retry-After cooldown: no probing yet
        for _ in range(30):  # successes after the cooldown: fast back to just under 20
            lim.release(await lim.acquire())
        seen.append(lim.limit)
        await asyncio.sleep(0.06)
        for _ in range(19):
            lim.release(await lim.acquire())
        seen.append(lim.limit)  # probing: about +1 per window of successes
        return seen

    start, halved, cooling, recovered, probed = asyncio.run(go())
    assert (start, halved) == (40, 20)
    assert cooling == 20
    assert recovered == 20  # known-bad level was 20 in flight: recover to 19..20, not beyond
    assert 20 < probed <= 21.5


def test_rpm_paces_requests_evenly() -> None:
    async def go() -> list[float]:
        lim = Limiter(RateLimits(max_concurrency=100, rpm=6000))  # one every 10 ms
        stamps = []
        for _ in range(20):
            t = await lim.acquire()
            stamps.append(time.monotonic())
            lim.release(t)
        return stamps

    stamps = asyncio.run(go())
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert stamps[-1] - stamps[0] >= 19 * 0.01 * 0.9
    assert min(gaps) >= 0.005  # no bursts


def test_tpm_charges_an_estimate_and_refunds_what_was_not_used() -> None:
    async def go() -> tuple[float, float, float]:
        lim = Limiter(RateLimits(max_concurrency=10, tpm=600_000))  # a bucket of 10_000
        full = lim._tokens
        t = await lim.acquire(tokens=4000)
        charged = lim._tokens
        lim.release(t, tokens=1000)  # the call used far less than estimated
        return full, charged, lim._tokens

    full, charged, refunded = asyncio.run(go())
    assert full == pytest.approx(10_000)
    assert charged == pytest.approx(6000, abs=50)
    assert refunded == pytest.approx(9000, abs=50)


def test_tpm_makes_a_caller_wait_for_tokens() -> None:
    async def go() -> float:
        lim = Limiter(RateLimits(max_concurrency=10, tpm=60_000))  # 1000 tokens/s, 1 s deep
        lim.release(await lim.acquire(tokens=1500), tokens=1500)  # into debt by 500
        t0 = time.monotonic()
        lim.release(await lim.acquire(tokens=300), tokens=300)
        return time.monotonic() - t0

    assert asyncio.run(go()) >= 0.75  # the 500 of debt and then 300 tokens at 1000/s


def storm(adaptive: bool) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with StubServer(latency=0.1, max_inflight=10, retry_after=0.05) as stub:
            c = LLMClient(
                model="openai/stub-model",
                limits=RateLimits(max_concurrency=40, adaptive=adaptive),
                retry=RetryPolicy(wait=wait_none(), max_attempts=50),
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            await c.complete([{"role": "user", "content": "warm"}])
            stub.reset()
            await asyncio.gather(
                *(c.complete([{"role": "user", "content": f"q{i}"}]) for i in range(120))
            )
            return stub.stats.as_dict()

    return asyncio.run(go())


def test_adaptive_concurrency_turns_a_429_storm_into_a_few_429s() -> None:
    fixed, adaptive = storm(adaptive=False), storm(adaptive=True)
    assert fixed["ok"] == adaptive["ok"] == 120
    assert adaptive["429"] * 3 < fixed["429"]
