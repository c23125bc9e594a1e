"""The demo recipe answered by the loopback stub instead of the embedded model, with
every request the stub received kept, for the trace, `synth show` and field tests."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from synth.context import Context
from synth.records import Record, child_id
from synth.registry import step

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo.yaml"


class Recorder:
    """A stub `answer`: a one-sentence summary of the ticket's subject, except for about
    one ticket in three, answered with a refusal that the demo's verifiers reject. Keeps
    each request body and the answer it gave, in arrival order."""

    def __init__(self, *, collapsed: bool = False) -> None:
        self.collapsed = collapsed  # every answer the same sentence (a collapsed model)
        self.requests: list[dict[str, Any]] = []
        self.answers: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str:
        prompt = str(body["messages"][-1]["content"])
        subject = re.search(r"Subject: (.*)", prompt)
        topic = subject.group(1).strip() if subject else prompt[:40]
        if self.collapsed:
            text = "The customer has a problem with the product and wants help."
        elif hashlib.sha256(topic.encode()).digest()[0] % 3 == 0:
            text = "Sorry, I cannot summarize this"
        else:
            text = f"The customer reports {topic.lower().rstrip('.!?')}."  # the ticket's words only
        self.requests.append(body)
        self.answers.append(text)
        return text


@step("test_with_copy")
def with_copy() -> Any:
    """Passes each record on, followed by a copy derived from it (`meta.parents`)."""

    async def run(records: AsyncIterator[Record], ctx: Context) -> AsyncIterator[Record]:
        async for r in records:
            yield r
            meta = {**r.meta, "parents": [r.id], "llm_calls": []}
            yield Record(child_id(r, "copy"), dict(r.data), meta)

    return run
