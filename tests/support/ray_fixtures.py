"""A step for the Ray executor tests, loaded on the workers through `SYNTH_PLUGINS`.

`test_guard` passes records through unchanged (so it never changes what a run writes)
and acts on marker files in `$SYNTH_TEST_FIXTURE_DIR` (a `SYNTH_*` variable, so the
executor forwards it to every worker):
- it appends a line to `starts-<seed>-<shard>` each time a shard's pipeline starts, which
  is how a test proves which shards a restarted run redid;
- `die-<seed>-<shard>`: at the `at`-th record it removes the marker and kills its own
  process (`os._exit`), once, the way an OOM kill or a lost node ends a worker;
- `fail-<seed>-<shard>`: at the `at`-th record it raises, every time, until removed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.context import Context
from synth.records import Record
from synth.registry import step


@step(
    "test_guard",
    schema={
        "type": "object",
        "additionalProperties": False,
        "properties": {"at": {"type": "integer", "minimum": 1}},
    },
)
def guard(at: int = 30) -> Any:
    """Pass-through that counts shard starts and dies or fails on a marker file."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        root = Path(os.environ["SYNTH_TEST_FIXTURE_DIR"])
        tag = f"{ctx.seed}-{ctx.shard}"
        fd = os.open(root / f"starts-{tag}", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{os.getpid()} {ctx.start_index}\n".encode())
        os.close(fd)
        die, fail = root / f"die-{tag}", root / f"fail-{tag}"
        seen = 0
        async for r in records:
            seen += 1
            if seen == at and fail.exists():
                raise RuntimeError(f"told to fail by {fail.name}")
            if seen == at and die.exists():
                await asyncio.sleep(0.7)  # the sink checkpoints what came before
            if seen == at + 40 and die.exists():
                die.unlink()
                os._exit(1)
            yield r

    return run
