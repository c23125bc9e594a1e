"""How the Ray executor scales a CPU-bound rule-based recipe, against the local executor.

    python bench/ray_scaling.py              # about 2-3 minutes on 2 cores
    python bench/ray_scaling.py --quick      # a smoke run of the same code
    python bench/ray_scaling.py -n 40000 --repeat 3

Records/s of `synth.run` on recipes/card-transactions.yaml (Faker source, three
verifiers: all CPU), each in a fresh run directory:
1. local executor, one process (the baseline);
2. Ray executor, 2 shards on a 2-CPU Ray instance: target >= 1.6x the baseline;
3. Ray executor, 1 shard: its overhead over the baseline, target <= 15%;
4. local executor, 2 worker processes (for information).
Ray's start-up (`ray.init`) and one warm-up run (workers importing synth) are timed
and reported but not part of the figures: a cluster is started once for many runs.
The local sides run in a child process without Ray loaded (a Ray driver's background
threads would slow an in-process baseline down and flatter the ratios); each side's
clock covers only its `synth.run` call.
Each side is measured `--repeat` times, interleaved, and the best of each is compared;
the load average is printed because the figures from a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "card-transactions.yaml"


def timed_run(out: Path, n: int, **kw: Any) -> float:
    """records/s of one `synth.run` into a fresh directory."""
    import synth

    t0 = time.perf_counter()
    result = asyncio.run(synth.run(RECIPE, n=n, seed=1, out=out, **kw))
    seconds = time.perf_counter() - t0
    assert result.kept == n, result.manifest.get("stop_reason")
    return n / seconds


def local_run(out: Path, n: int, workers: int) -> float:
    """records/s of the local executor, measured in a fresh child process."""
    cmd = [sys.executable, __file__, "--child", str(out), "-n", str(n), "--workers", str(workers)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20_000, help="records per run (default 20000)")
    ap.add_argument("--repeat", type=int, default=3, help="measurements per side (best kept)")
    ap.add_argument("--quick", action="store_true", help="n=400, one repeat")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # a local run into this directory
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:  # warm up first, as the Ray workers are: imports, Faker's locale data
        timed_run(Path(args.child) / "warm-up", min(args.n, 400))
        print(timed_run(Path(args.child) / "timed", args.n, workers=args.workers))
        return
    n, repeat = (400, 1) if args.quick else (args.n, args.repeat)
    load_before = os.getloadavg()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    t0 = time.perf_counter()
    ray.init(
        address="local",  # a private instance, even if a cluster runs on this machine
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    startup = time.perf_counter() - t0
    sides: dict[str, Callable[[Path], float]] = {
        "local, 1 process": lambda out: local_run(out, n, 1),
        "ray, 2 shards": lambda out: timed_run(out, n, executor="ray", shards=2),
        "ray, 1 shard": lambda out: timed_run(out, n, executor="ray", shards=1),
        "local, 2 processes": lambda out: local_run(out, n, 2),
    }
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="synth-ray-bench-") as tmp:
        t0 = time.perf_counter()
        timed_run(Path(tmp) / "warm-up", min(n, 400), executor="ray", shards=2)
        warm_up = time.perf_counter() - t0
        for i in range(repeat):
            for name, fn in sides.items():
                rate = fn(Path(tmp) / f"{name.replace(' ', '').replace(',', '-')}-{i}")
                best[name] = max(best.get(name, 0.0), rate)
    ray.shutdown()
    load_after = os.getloadavg()

    base = best["local, 1 process"]
    print(f"recipe {RECIPE.name}, n = {n}, best of {repeat}, {os.cpu_count()} CPUs")
    print(f"ray start-up {startup:.1f} s, warm-up run {warm_up:.1f} s (not in the figures)")
    for name, rate in best.items():
        print(f"  {name:<20} {rate:8.0f} records/s  {rate / base:5.2f}x")
    speedup = best["ray, 2 shards"] / base
    overhead = 1 - best["ray, 1 shard"] / base
    print(f"ray 2 shards vs local 1 process: {speedup:.2f}x (target >= 1.6x)")
    print(f"ray 1 shard overhead vs local 1 process: {overhead:.1%} (target <= 15%)")
    print(
        "load average (1/5/15 min) before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )


if __name__ == "__main__":
    main()
