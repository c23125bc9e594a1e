"""Async stream helpers: bounded, order-preserving concurrency with backpressure."""

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


async def ordered_map(
    items: AsyncIterable[T],
    fn: Callable[[T], Awaitable[U]],
    limit: int,
) -> AsyncGenerator[U, None]:
    """Apply `fn` to up to `limit` items at once and yield results in input order.

    Backpressure: at most `limit` items are pulled ahead of the consumer, so memory stays
    flat whatever the stream's length. Output order equals input order, so concurrency
    never changes a run's bytes. If the consumer stops early, pending work is cancelled."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    pending: asyncio.Queue[asyncio.Task[U] | None] = asyncio.Queue(maxsize=limit)

    async def feed() -> None:
        try:
            async for item in items:
                task = asyncio.ensure_future(fn(item))
                try:
                    await pending.put(task)
                except BaseException:  # cancelled while waiting for a slot: not orphaned
                    task.cancel()
                    raise
        finally:
            # Close the upstream stage now, not when it is garbage-collected: otherwise its
            # own feeder keeps running (and calling models) after the run has stopped.
            close = getattr(items, "aclose", None)
            if close is not None:
                try:
                    await close()
                except RuntimeError:  # it is still running (it raised): already done
                    pass
            await pending.put(None)

    feeder = asyncio.ensure_future(feed())
    try:
        while True:
            task = await pending.get()
            if task is None:
                break
            yield await task
        await feeder  # re-raise an error from the source
    finally:
        feeder.cancel()
        dropped = []
        while not pending.empty():
            t = pending.get_nowait()
            if t is not None:
                t.cancel()
                dropped.append(t)
        # Wait for the cancelled work to unwind, so no task outlives the stream (and, e.g.,
        # the LLM client it uses is not closed under it).
        await asyncio.gather(feeder, *dropped, return_exceptions=True)


async def flat_ordered_map(
    items: AsyncIterable[T],
    fn: Callable[[T], Awaitable[Iterable[U]]],
    limit: int,
) -> AsyncGenerator[U, None]:
    """`ordered_map` for functions that return zero or more results per item."""
    inner = ordered_map(items, fn, limit)
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
