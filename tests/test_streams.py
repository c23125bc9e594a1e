"""`ordered_map`: input order whatever the timing, every slot kept busy behind a slow
item, a bounded window, and clean cancellation.

Latencies are counted in event-loop turns (`sleep(0)`), not seconds, so the tests are
exact and fast whatever the machine's load."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.streams import REORDER_PER_SLOT, aiter_of, flat_ordered_map, ordered_map, window


class Boom(Exception):
    pass


async def turns(k: int) -> None:
    for _ in range(k):
        await asyncio.sleep(0)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 60))
    return {
        "n": n,
        "latency": draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)),
        "fails": draw(st.sets(st.integers(0, max(0, n - 1)), max_size=3) if n else st.just(set())),
        "source_fails_at": draw(st.one_of(st.none(), st.integers(0, max(0, n)))),
        "consumer": draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)),
        "limit": draw(st.integers(1, 12)),
        "reorder": draw(st.one_of(st.none(), st.integers(0, 30))),
    }


async def observe(s: dict[str, Any], limit: int, reorder: int | None) -> dict[str, Any]:
    """Run one scenario; return what came out, in order, and the most held / running."""
    seen = {"pulled": 0, "taken": 0, "running": 0, "max_held": 0, "max_running": 0}
    out: list[Any] = []

    async def source() -> AsyncIterator[int]:
        for i in range(s["n"]):
            if i == s["source_fails_at"]:
                raise Boom(f"source at {i}")
            seen["pulled"] += 1
            seen["max_held"] = max(seen["max_held"], seen["pulled"] - seen["taken"])
            yield i

    async def fn(i: int) -> int:
        seen["running"] += 1
        seen["max_running"] = max(seen["max_running"], seen["running"])
        try:
            await turns(s["latency"][i])
        finally:
            seen["running"] -= 1
        if i in s["fails"]:
            raise Boom(f"item {i}")
        return i * i

    try:
        async for r in ordered_map(source(), fn, limit, reorder=reorder):
            seen["taken"] += 1
            out.append(r)
            await turns(s["consumer"][len(out) - 1])
    except Boom as exc:
        out.append(str(exc))
    return {"out": out, **seen}


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_results_and_errors_come_out_as_a_one_at_a_time_run_gives_them(s: dict[str, Any]) -> None:
    got = asyncio.run(observe(s, s["limit"], s["reorder"]))
    one = asyncio.run(observe(s, 1, 0))
    assert got["out"] == one["out"]
    # and both are exactly the input order, cut at the first error
    expected: list[Any] = []
    for i in range(s["n"]):
        if i == s["source_fails_at"]:
            expected.append(f"source at {i}")
            break
        if i in s["fails"]:
            expected.append(f"item {i}")
            break
        expected.append(i * i)
    assert got["out"] == expected
    assert got["max_running"] <= s["limit"]
    assert got["max_held"] <= window(s["limit"], s["reorder"])
    assert got["running"] == 0  # nothing outlives the stream, whichever way it ended


def test_the_default_window_is_a_documented_multiple_of_the_limit() -> None:
    assert window(50) == 50 + REORDER_PER_SLOT * 50 == 450
    assert window(50, reorder=0) == 50


def test_a_stuck_item_does_not_stop_the_others_from_starting() -> None:
    """1 item stuck, 50 slots: the other 49 keep running new items until the window
    (50 + 400 items) is full, and only then does new work wait."""
    limit, n = 50, 1000
    bound = window(limit)
    stuck = asyncio.Event()
    seen = {"started": 0, "running": 0, "max_running": 0, "started_while_stuck": 0}

    async def fn(i: int) -> int:
        seen["started"] += 1
        if i == 0:
            await stuck.wait()
            return i
        seen["running"] += 1
        if not stuck.is_set():
            seen["max_running"] = max(seen["max_running"], seen["running"])
            seen["started_while_stuck"] += 1
        await turns(3)
        seen["running"] -= 1
        return i

    async def release_when_idle() -> None:
        last, idle = -1, 0
        while idle < 50:  # nothing started for 50 turns: everything that can run has
            await asyncio.sleep(0)
            idle = idle + 1 if seen["started"] == last else 0
            last = seen["started"]
        stuck.set()

    async def main() -> list[int]:
        watchdog = asyncio.ensure_future(release_when_idle())
        out = [r async for r in ordered_map(aiter_of(range(n)), fn, limit)]
        await watchdog
        return out

    assert asyncio.run(main()) == list(range(n))
    assert seen["max_running"] == limit - 1  # while stuck, the 49 free slots stayed busy
    assert seen["started_while_stuck"] == bound - 1  # ... until the window was full
    assert seen["started"] == n


def test_a_slow_consumer_holds_the_stage_to_limit_items_ahead() -> None:
    """The reorder room is only for results that finished behind a slower item: with
    results in order and a consumer slower than fn, no more than limit (+1 pulled for
    the next free slot) are held, as with a bounded queue."""
    seen = {"pulled": 0, "taken": 0, "lag": 0}

    async def source() -> AsyncIterator[int]:
        for i in range(500):
            seen["pulled"] += 1
            seen["lag"] = max(seen["lag"], seen["pulled"] - seen["taken"])
            yield i

    async def fn(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def main() -> None:
        async for _ in ordered_map(source(), fn, 8):
            seen["taken"] += 1
            await turns(5)

    asyncio.run(main())
    assert seen["lag"] <= 8 + 1


def test_stopping_early_cancels_pending_work_waits_for_it_and_closes_the_source() -> None:
    state = {"cancelled": 0, "running": 0, "source_closed": False}
    never = asyncio.Event()

    async def source() -> AsyncIterator[int]:
        try:
            for i in range(1000):
                yield i
        finally:
            state["source_closed"] = True

    async def fn(i: int) -> int:
        state["running"] += 1
        try:
            if i >= 3:
                await never.wait()
            return i
        except asyncio.CancelledError:
            state["cancelled"] += 1
            raise
        finally:
            state["running"] -= 1

    async def main() -> list[int]:
        out = []
        stream = ordered_map(source(), fn, 10)
        async for r in stream:
            out.append(r)
            if len(out) == 3:
                break
        await stream.aclose()
        assert state["running"] == 0  # unwound before aclose returned
        return out

    assert asyncio.run(main()) == [0, 1, 2]
    assert state["cancelled"] > 0 and state["source_closed"]


def test_an_error_cancels_the_rest_and_closes_the_source() -> None:
    closed = []

    async def source() -> AsyncIterator[int]:
        try:
            for i in range(100):
                yield i
        finally:
            closed.append(True)

    async def fn(i: int) -> int:
        if i == 5:
            raise Boom("five")
        await asyncio.sleep(0.01 if i > 5 else 0)
        return i

    async def main() -> list[int]:
        out = []
        with pytest.raises(Boom, match="five"):
            async for r in ordered_map(source(), fn, 4):
                out.append(r)
        return out

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert closed == [True]


def test_flat_ordered_map_flattens_in_order_with_the_same_bounds() -> None:
    async def fn(i: int) -> list[int]:
        await turns(10 - i % 10)  # later items finish first
        return [i] * (i % 3)

    async def main() -> list[int]:
        return [r async for r in flat_ordered_map(aiter_of(range(30)), fn, 5, reorder=2)]

    assert asyncio.run(main()) == [i for i in range(30) for _ in range(i % 3)]


@pytest.mark.parametrize(("limit", "reorder"), [(0, None), (1, -1)])
def test_bad_bounds_are_refused(limit: int, reorder: int | None) -> None:
    async def main() -> None:
        async for _ in ordered_map(aiter_of([1]), asyncio.sleep, limit, reorder=reorder):
            pass

    with pytest.raises(ValueError):
        asyncio.run(main())
