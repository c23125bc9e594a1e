"""Verified records per second through paraphrase + judge, as a fraction of the LLM bound.

A recipe (Faker support tickets -> `paraphrase` -> `novelty` -> rubric `judge`) runs
through the real engine and the real LLM client against the loopback stub at a fixed
latency. The stub answers one paraphrase in five with a copy of its input, which the
cheap `novelty` check rejects before the judge is asked.

    LLM bound = (LLM calls made) x latency / concurrency

is the shortest time those calls can take with `concurrency` in flight; the pipeline's
efficiency is bound / wall time (target >= 0.9). A bare `litellm.acompletion` loop
making the same number of calls at the same concurrency, measured in the same run, shows
what the transport alone reaches. Also reported: judge calls the chain's short-circuit
saved (copies rejected by `novelty` never reach the judge).

    python bench/judge_throughput.py [--n 600] [--latency 2.0] [--concurrency 64]

Each call also costs litellm's own client-side time (~0.1 s on a loaded 2-core machine),
which no pipeline can hide; the bare loop shows it. At 2 s latency (a typical API call)
it is ~5% of the bound, at 1 s ~10%.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from synth.testing import StubServer  # noqa: E402

COPY_EVERY = 5  # one paraphrase in five is a copy of its input


def answer(request: dict[str, Any]) -> str:
    """Stub model: judge calls get scores; paraphrase calls a rewrite, or a copy."""
    messages = request.get("messages", [])
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if "evaluator" in system:
        return json.dumps({"meaning": 4, "fluency": 5, "reason": "same request, new words"})
    digest = int(hashlib.sha256(user.encode()).hexdigest(), 16)
    if digest % COPY_EVERY == 0:
        return user
    return "In other words: " + " ".join(reversed(user.split()))


def recipe(concurrency: int) -> dict[str, Any]:
    return {
        "name": "bench-judge-throughput",
        "model": "openai/stub",
        "concurrency": concurrency,
        "steps": [
            {"use": "faker", "template": "support-tickets"},
            {"use": "paraphrase", "fields": ["body"], "k": 1, "max_tokens": 64},
        ],
        "verify": [
            {"use": "paraphrase-novelty", "field": "body"},
            {
                "use": "paraphrase-meaning",
                "show": {"original": "meta.originals.body", "paraphrase": "data.body"},
            },
        ],
    }


async def pipeline(n: int, concurrency: int, stub: StubServer, out: Path) -> dict[str, Any]:
    import synth
    from synth.runner.recipe import from_dict

    stub.reset()
    rec = from_dict(recipe(concurrency), base_dir=ROOT)
    started = time.perf_counter()
    result = await synth.run(rec, n=n, out=out, force=True, no_cache=True)
    wall = time.perf_counter() - started
    m = result.manifest
    steps = m.get("step_stats") or m.get("stats") or {}
    return {
        "wall": wall,
        "kept": result.kept,
        "generated": result.generated,
        "requests": stub.stats.ok,
        "max_in_flight": stub.stats.max_in_flight,
        "near_copy": m["counts"]["rejected_by_reason"].get("near_copy", 0),
        "judge_calls": steps.get("judge_calls"),
        "rejected": m["counts"]["rejected_by_reason"],
        "limiter": (m.get("llm") or {}).get("concurrency"),
    }


async def bare_loop(calls: int, concurrency: int, stub: StubServer) -> float:
    """`calls` chat completions through litellm with a semaphore: the transport alone."""
    import litellm

    stub.reset()
    sem = asyncio.Semaphore(concurrency)
    msgs = [{"role": "user", "content": "Rewrite: my order never arrived."}]

    async def one(i: int) -> None:
        async with sem:
            await litellm.acompletion(
                model="openai/stub",
                messages=[*msgs, {"role": "user", "content": str(i)}],
                api_base=stub.url,
                api_key="sk-bench",
                num_retries=0,
                max_tokens=64,
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> int:
    os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-key"
    os.environ["SYNTH_LLM_MAX_CONCURRENCY"] = str(args.concurrency)  # total calls in flight
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SYNTH_STATE_DIR"] = str(Path(tmp) / "state")
        async with StubServer(latency=args.latency, answer=answer) as stub:
            os.environ["OPENAI_API_BASE"] = stub.url
            await pipeline(8, args.concurrency, stub, Path(tmp) / "warm")  # imports, caches
            await asyncio.sleep(2 * args.latency)  # let the warm-up's last requests drain
            r = await pipeline(args.n, args.concurrency, stub, Path(tmp) / "run")
            bare = await bare_loop(r["requests"], args.concurrency, stub)
    bound = r["requests"] * args.latency / args.concurrency
    rate, bound_rate = r["kept"] / r["wall"], r["kept"] / bound
    judged = r["judge_calls"] if r["judge_calls"] is not None else r["requests"] - r["generated"]
    print(f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency}, n={args.n}")
    print(f"  records generated {r['generated']}, kept {r['kept']}, rejected {r['rejected']}")
    print(
        f"  LLM calls {r['requests']} ({r['requests'] / r['generated']:.2f} per record), "
        f"max in flight {r['max_in_flight']}"
    )
    print(f"  wall {r['wall']:.2f} s, LLM bound {bound:.2f} s")
    print(
        f"  verified records/s {rate:.1f} vs bound {bound_rate:.1f}: "
        f"efficiency {bound / r['wall']:.3f} (target >= 0.9)"
    )
    print(
        f"  bare litellm loop, same calls: {bare:.2f} s, efficiency {bound / bare:.3f}; "
        f"pipeline / bare = {bare / r['wall']:.3f}"
    )
    saved = r["near_copy"]
    share = saved / max(1, saved + judged)
    print(
        f"  judge calls made {judged}, saved by the chain's short-circuit {saved} "
        f"({share:.0%} of what a judge-only chain would call)"
    )
    if args.verbose:
        print(f"  limiter: {r['limiter']}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=600, help="records that must pass")
    parser.add_argument("--latency", type=float, default=2.0, help="stub latency, seconds")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--verbose", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
