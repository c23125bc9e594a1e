"""A recipe end to end against the loopback stub, with a bare aiohttp loop as baseline.

    python bench/recipe_throughput.py            # N = 2000
    python bench/recipe_throughput.py --quick    # N = 500 (or -n N, or SYNTH_BENCH_N=N)

What is timed is `synth.run` of a recipe that `read`s a JSONL file of N prompts and sends
each through the `prompt` step (response cache off), writing data.jsonl, the manifest and
the report: what a user runs. The recipe sets no `concurrency:`, so the records in flight
follow the model's `max_concurrency` (its `limits:` entry). Each client runs in a fresh
process after a one-record warm-up run in that process (imports, litellm's lazy provider
set-up); the stub runs in its own process, so CPU is the client's alone.

Scenarios (as in llm_throughput.py):
  A  latency 200 ms, 100 slots
  B  as A, but the stub caps in-flight at 50 (429 + Retry-After 1 s) and fails 5% with 500s
  C  latency 200 ms +- 150 ms (uniform) jitter, 100 slots

Goodput is the bound N x latency / min(slots, server cap) over the wall time, times the
share of records answered correctly (1.0 = as fast as the server allows); `ceiling` is a
client with zero overhead (see llm_throughput.ceiling). `http` is the recipe with
`transport: http`, `litellm` with litellm. `bare` is an aiohttp loop under a semaphore
that reads the same file, retries 429s (after Retry-After) and 5xx, and writes each answer
to a JSONL file: the least any client must do. Targets (transport http): A and C >= 90%
of the bound, B >= 80% with every record correct. The machine may be shared: rerun
before believing a small difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llm_throughput import _start_stub, _stats, ceiling

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
MODEL = "openai/gpt-4o-mini"
KEY = "sk-bench-not-a-real-key"
LATENCY = 0.2
SCENARIOS: dict[str, dict[str, object]] = {
    "A": {"jitter": 0.0, "slots": 100, "stub": []},
    "B": {
        "jitter": 0.0,
        "slots": 100,
        "cap": 50,
        "error_rate": 0.05,
        "stub": ["--max-inflight", "50", "--retry-after", "1", "--error-rate", "0.05"],
    },
    "C": {"jitter": 0.15, "slots": 100, "stub": []},
}
TARGETS = {"A": 0.90, "B": 0.80, "C": 0.90}  # goodput with transport http (B: all correct)


# --------------------------------------------------------------------------- workers


def _question(i: int) -> str:
    return f"row {i}: write one line"


async def _bare(url: str, rows: list[str], out: Path, slots: int) -> dict[str, float]:
    import aiohttp

    sem = asyncio.Semaphore(slots)
    headers = {"Authorization": f"Bearer {KEY}"}

    async def one(session: aiohttp.ClientSession, prompt: str) -> str | None:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
        for attempt in range(8):
            async with sem, session.post(f"{url}/chat/completions", json=body) as resp:
                if resp.status == 200:
                    answer = await resp.json()
                    return str(answer["choices"][0]["message"]["content"])
                wait = float(resp.headers.get("Retry-After", 0.05 * 2**attempt))
            await asyncio.sleep(wait)
        return None

    wall0, cpu0 = time.perf_counter(), time.process_time()
    async with aiohttp.ClientSession(headers=headers) as session:
        answers = await asyncio.gather(*(one(session, p) for p in rows))
    pairs = list(zip(rows, answers, strict=True))
    lines = "".join(json.dumps({"prompt": p, "answer": a}) + "\n" for p, a in pairs)
    await asyncio.to_thread(out.write_text, lines)
    ok = sum(a == f"echo: {p}" for p, a in pairs)
    return {"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0, "ok": ok}


def _recipe(prompts: Path, slots: int, transport: str, concurrency: int | None) -> dict:
    recipe: dict[str, object] = {
        "name": "bench-recipe-throughput",
        "model": MODEL,
        "limits": {MODEL: {"max_concurrency": slots, "transport": transport}},
        "steps": [
            {"use": "read", "path": str(prompts)},
            {"use": "prompt", "prompt": "{{ prompt }}", "output_field": "answer"},
        ],
    }
    if concurrency is not None:
        recipe["concurrency"] = concurrency
    return recipe


async def _synth(
    url: str, prompts: Path, out: Path, n: int, slots: int, transport: str, conc: int | None
) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    os.environ.update({"OPENAI_API_BASE": url, "OPENAI_API_KEY": KEY})
    import synth

    # One request exactly: calls a warm-up cancelled would still hold the stub's slots.
    warm = _recipe(out.with_name("warm.jsonl"), slots, transport, conc)
    await synth.run(warm, n=1, out=out.with_name("warm"), no_cache=True, force=True)
    await _reset(url)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = await synth.run(
        _recipe(prompts, slots, transport, conc), n=n, out=out, no_cache=True, force=True
    )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    ok = sum(r.data.get("answer") == f"echo: {r.data['prompt']}" for r in result.records())
    return {"wall": wall, "cpu": cpu, "ok": ok, "kept": result.kept}


async def _reset(url: str) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        await s.post(url.removesuffix("/v1") + "/stats/reset")


def _worker(argv: list[str]) -> None:
    kind, url, prompts, out = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    n, slots, conc = int(argv[4]), int(argv[5]), (int(argv[6]) or None)
    if kind == "bare":
        rows = [json.loads(line)["prompt"] for line in prompts.read_text().splitlines()]
        result = asyncio.run(_bare(url, rows, out, slots))
    else:
        first = prompts.read_text().split("\n", 1)[0]
        out.with_name("warm.jsonl").write_text(first + "\n")
        result = asyncio.run(_synth(url, prompts, out, n, slots, kind, conc))
    print(json.dumps(result))


# --------------------------------------------------------------------------- driver


def _run_client(
    kind: str, url: str, prompts: Path, n: int, slots: int, conc: int | None
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "SYNTH_STATE_DIR": tmp}
        argv = [kind, url, str(prompts), str(Path(tmp, "out")), str(n), str(slots), str(conc or 0)]
        out = subprocess.run(
            [PY, __file__, "_worker", *argv],
            capture_output=True,
            text=True,
            cwd=tmp,
            env=env,
        )
    if out.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    stats = _stats(url)
    result.update({k: stats[k] for k in ("requests", "429", "500", "max_in_flight")})
    return result


def scenario(
    name: str, n: int, clients: tuple[str, ...], prompts: Path, conc: int | None
) -> dict[str, dict[str, object]]:
    spec = SCENARIOS[name]
    jitter, slots = float(spec["jitter"]), int(spec["slots"])  # type: ignore[call-overload]
    proc, url = _start_stub(spec["stub"], LATENCY, jitter)  # type: ignore[arg-type]
    try:
        width = min(slots, int(spec.get("cap", slots)))  # type: ignore[call-overload]
        bound = n * LATENCY / width
        error_rate = float(spec.get("error_rate", 0.0))  # type: ignore[arg-type]
        out: dict[str, dict[str, object]] = {
            "ceiling": {"goodput": ceiling(n, width, LATENCY, jitter, error_rate)}
        }
        for kind in clients:
            r = _run_client(kind, url, prompts, n, slots, conc)
            ok = int(r["ok"])  # type: ignore[call-overload]
            r["goodput"] = bound / float(r["wall"]) * ok / n  # type: ignore[arg-type]
            r["cpu_ms"] = float(r["cpu"]) / max(ok, 1) * 1000  # type: ignore[arg-type]
            out[kind] = r
        return out
    finally:
        proc.terminate()
        proc.wait()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        _worker(sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="N = 500")
    parser.add_argument("-n", type=int, default=None, help="records (default 2000)")
    parser.add_argument("--scenarios", default="ABC")
    parser.add_argument("--clients", default="bare,http,litellm", help="of bare,http,litellm")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="set the recipe's concurrency: explicitly"
    )
    args = parser.parse_args()
    env_n = os.environ.get("SYNTH_BENCH_N")
    n = args.n or (int(env_n) if env_n else (500 if args.quick else 2000))

    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp, "prompts.jsonl")
        prompts.write_text("".join(json.dumps({"prompt": _question(i)}) + "\n" for i in range(n)))
        print(f"Recipe throughput (read -> prompt -> data.jsonl), N = {n}, model {MODEL}")
        print(
            f"{'':3}{'client':8}{'wall s':>8}{'goodput':>9}{'cpu ms/rec':>12}"
            f"{'ok':>6}{'reqs':>6}{'429s':>6}{'500s':>6}{'peak':>6}"
        )
        for name in args.scenarios:
            res = scenario(name, n, tuple(args.clients.split(",")), prompts, args.concurrency)
            print(f"{name:3}{'ceiling':8}{'':>8}{res.pop('ceiling')['goodput']:>9.0%}")
            for kind, r in res.items():
                print(
                    f"{name:3}{kind:8}{r['wall']:>8.2f}{r['goodput']:>9.0%}{r['cpu_ms']:>12.2f}"
                    f"{r['ok']:>6}{r['requests']:>6}{r['429']:>6}{r['500']:>6}"
                    f"{r['max_in_flight']:>6}"
                )
            b = res.get("bare")
            for kind, s in res.items():
                if b is None or kind == "bare":
                    continue
                gain = float(s["goodput"]) / max(float(b["goodput"]), 1e-9)  # type: ignore[arg-type]
                cpu = float(s["cpu_ms"]) / max(float(b["cpu_ms"]), 1e-9)  # type: ignore[arg-type]
                print(f"   {kind}/bare: goodput x{gain:.2f}, cpu/record x{cpu:.2f}")
            h = res.get("http")
            if h is not None:
                met = float(h["goodput"]) >= TARGETS[name] and h["ok"] == n  # type: ignore[arg-type]
                print(f"   target http >= {TARGETS[name]:.0%}: {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
