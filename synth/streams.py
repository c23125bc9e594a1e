"""Async stream helpers: bounded, order-preserving concurrency with backpressure.

`ordered_map` keeps `limit` calls running and starts the next one as soon as *any* call
finishes, not when the oldest does: a slow item (latency jitter, a call waiting out a
429's `Retry-After`) holds one slot, never the whole stage. Results still leave in input
order, so concurrency never changes a run's bytes; the ones that finish ahead of a slower
item wait for it in a reorder buffer of bounded size."""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

# Reorder buffer per slot. One slow item stalls nothing until the other slots have
# finished this many items each behind it: with 8, an item may take about 9 typical
# latencies before new work waits for it. bench/recipe_throughput.py B (a 1 s Retry-After
# or a 500's backoff, then the call again, against 200 ms calls) filled a 4 x window
# twice in 2000 records and an 8 x one never. A stage so holds at most 9 x limit items:
# 576 records at the built-in max_concurrency of 64, a few MB.
REORDER_PER_SLOT = 8


def window(limit: int, reorder: int | None = None) -> int:
    """The most items `ordered_map(..., limit, reorder=reorder)` holds at once."""
    return limit + (REORDER_PER_SLOT * limit if reorder is None else reorder)


async def ordered_map(
    items: AsyncIterable[T],
    fn: Callable[[T], Awaitable[U]],
    limit: int,
    *,
    reorder: int | None = None,
) -> AsyncGenerator[U, None]:
    """Apply `fn` to up to `limit` items at once and yield results in input order.

    A new item starts whenever both hold:
    - a slot is free: fewer than `limit` items are running or finished in order and not
      yet taken. A consumer slower than `fn` so holds the stage to `limit` items ahead
      of it, as a bounded queue would;
    - the window has room: fewer than `limit + reorder` items are held in all (running,
      finished behind a slower earlier item, or pulled from `items` and waiting for a
      slot). `reorder` defaults to `REORDER_PER_SLOT * limit` (8 x). Only results that
      finished *behind* a slower item use this room; when it is full, new work waits
      until that item finishes. A stage never holds more than `limit + reorder` items
      (records, or their results): 9 x limit by default, see `window`.

    Errors come out in input order: `fn`'s for an item when the stream reaches it, the
    source's after every item pulled before it. If the consumer stops early (or an error
    ends the stream), pending work is cancelled and awaited, and `items` is closed."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if reorder is not None and reorder < 0:
        raise ValueError(f"reorder must be >= 0, got {reorder}")
    bound = window(limit, reorder)
    held: dict[int, asyncio.Future[U]] = {}  # by position; started and not yet taken
    taken = started = front = 0  # next to yield, next to start, first not known done
    running = 0
    fed_all = False
    wake_feeder, wake_consumer = asyncio.Event(), asyncio.Event()

    def finished(_: object) -> None:
        nonlocal running
        running -= 1
        wake_feeder.set()

    def slot_free() -> bool:
        nonlocal front
        front = max(front, taken)
        while front < started and held[front].done():
            front += 1
        return running + (front - taken) < limit  # running + done in order, untaken

    async def feed() -> None:
        nonlocal started, running, fed_all
        source = aiter(items)
        try:
            while True:
                while started - taken >= bound:  # room for the item about to be pulled
                    wake_feeder.clear()
                    await wake_feeder.wait()
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    return
                while not slot_free():
                    wake_feeder.clear()
                    await wake_feeder.wait()
                task = asyncio.ensure_future(fn(item))
                running += 1
                task.add_done_callback(finished)
                held[started] = task
                started += 1
                wake_consumer.set()
        finally:
            # Close the upstream stage now, not when it is garbage-collected: otherwise its
            # own feeder keeps running (and calling models) after the run has stopped.
            close = getattr(items, "aclose", None)
            if close is not None:
                try:
                    await close()
                except RuntimeError:  # it is still running (it raised): already done
                    pass
            fed_all = True
            wake_consumer.set()

    feeder = asyncio.ensure_future(feed())
    try:
        while True:
            while taken == started and not fed_all:
                wake_consumer.clear()
                await wake_consumer.wait()
            if taken == started:
                break
            result = await held[taken]  # fn's error, in order
            del held[taken]
            taken += 1
            wake_feeder.set()
            yield result
        await feeder  # re-raise an error from the source
    finally:
        feeder.cancel()
        for t in held.values():
            t.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        for t in held.values():  # anything it started while unwinding
            t.cancel()
        # Wait for the cancelled work to unwind, so no task outlives the stream (and, e.g.,
        # the LLM client it uses is not closed under it).
        await asyncio.gather(*held.values(), return_exceptions=True)


async def flat_ordered_map(
    items: AsyncIterable[T],
    fn: Callable[[T], Awaitable[Iterable[U]]],
    limit: int,
    *,
    reorder: int | None = None,
) -> AsyncGenerator[U, None]:
    """`ordered_map` for functions that return zero or more results per item (the bounds
    count items, not results)."""
    inner = ordered_map(items, fn, limit, reorder=reorder)
    try:
        async for results in inner:
            for r in results:
                yield r
    finally:
        await inner.aclose()  # `async for` does not close it: its tasks would run on


async def aiter_of(iterable: Iterable[T]) -> AsyncIterator[T]:
    """An async stream over a plain iterable (tests, and sources built from lists)."""
    for item in iterable:
        yield item
