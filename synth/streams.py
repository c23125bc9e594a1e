"""Async stream helpers: bounded, order-preserving concurrency with backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


async def ordered_map(
    items: AsyncIterable[T],
    fn: Callable[[T], Awaitable[U]],
    limit: int,
) -> AsyncIterator[U]:
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
                await pending.put(asyncio.ensure_future(fn(item)))
        finally:
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
        while not pending.empty():
            t = pending.get_nowait()
            if t is not None:
                t.cancel()
        try:
            await feeder
        except (asyncio.CancelledError, Exception):
            pass


async def flat_ordered_map(
    items: AsyncIterable[T],
    fn: Callable[[T], Awaitable[Iterable[U]]],
    limit: int,
) -> AsyncIterator[U]:
    """`ordered_map` for functions that return zero or more results per item."""
    async for results in ordered_map(items, fn, limit):
        for r in results:
            yield r


async def aiter_of(iterable: Iterable[T]) -> AsyncIterator[T]:
    """An async stream over a plain iterable (tests, and sources built from lists)."""
    for item in iterable:
        yield item
