"""Test kit that ships with synth: a scripted fake LLM and a fault-injecting stub server.

`ScriptedLLM` implements the same `complete` seam as the real client, so a step can be
unit-tested without a model. `StubServer` is a real OpenAI-compatible HTTP server on
loopback (aiohttp) that misbehaves on request: latency and jitter, 429 with `Retry-After`
above a concurrency or RPM limit, a rate of 500s, truncated JSON. LLM tests drive the
real litellm path against it (`model="openai/<name>"`, `api_base=stub.url`), so retries,
rate limits and caching are tested end to end rather than by patching internals.

Run it on its own (for benchmarks or by hand):

    python -m synth.testing stub --port 0 --latency 0.2 --max-inflight 50
"""

from synth.testing.fake import ScriptedCall, ScriptedLLM
from synth.testing.stub import (
    Answer,
    Logprobs,
    StubServer,
    StubStats,
    echo_answer,
    echo_logprobs,
    fetch_stats,
)

__all__ = [
    "Answer",
    "Logprobs",
    "ScriptedCall",
    "ScriptedLLM",
    "StubServer",
    "StubStats",
    "echo_answer",
    "echo_logprobs",
    "fetch_stats",
]
