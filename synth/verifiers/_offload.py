"""Pure CPU work in a verifier runs inline when small and in a thread when large.

A verifier's check runs on the event loop, beside every model call in flight; a check
that computes for tens of milliseconds stalls them all. Measured on 2 cores: a hop to
`asyncio.to_thread` costs about 80 us, while on 4k characters chrF takes about 12 ms,
an edit ratio of two texts 1.4 ms and a best-window quote match 0.2-0.6 ms (all growing
with length, edit ratio quadratically: 60 ms at 45k). So inputs of OFF_LOOP_CHARS or
more go to a thread and shorter ones stay inline, where the hop would cost more than
the work. A thread frees the loop only if the work lets go of the GIL: the rapidfuzz
scores in `text.similarity` release it, and pure-Python work (chrF, n-gram sets) gives
it back every 5 ms (`sys.getswitchinterval`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

OFF_LOOP_CHARS = 4096


async def cpu(size: int, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)`, in a worker thread when `size` (the characters it reads)
    is OFF_LOOP_CHARS or more."""
    if size >= OFF_LOOP_CHARS:
        return await asyncio.to_thread(fn, *args, **kwargs)
    return fn(*args, **kwargs)
