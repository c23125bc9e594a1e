"""Sandbox throughput: the default backend (bubblewrap + slot uid + rlimits + seccomp,
fork servers) against a bare `subprocess.run([python, file])` per job, in the same run.

Two workloads: a trivial job (one function, one test) and a small unittest file (a class
with three tests). For each: median and p90 latency of sequential jobs, and jobs/s with 2
workers. The bare baseline gets no isolation at all; it is measured twice, as a naive
harness runs it (`python file`) and lean (`python -I -S file`, no site hooks), and the ratio
is taken against the faster of the two.

    python bench/sandbox_throughput.py [--jobs 200]
Targets (issue 5): sandbox median <= 10 ms on the trivial job, and >= 3x the bare jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from synth.sandbox import Limits, SandboxSettings, get_pool, run_tests

TRIVIAL = ("def answer():\n    return 42\n", "def test_answer():\n    assert answer() == 42\n")
UNITTEST = (
    "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
    "import unittest\nfrom solution import clamp\n\n"
    "class TestClamp(unittest.TestCase):\n"
    "    def test_inside(self):\n        self.assertEqual(clamp(5, 0, 10), 5)\n"
    "    def test_low(self):\n        self.assertEqual(clamp(-1, 0, 10), 0)\n"
    "    def test_high(self):\n        self.assertEqual(clamp(11, 0, 10), 10)\n",
)


def bare_script(solution: str, tests: str) -> str:
    """The same work as one plain script: solution, tests, and a runner call."""
    tests = tests.replace("from solution import clamp\n", "")
    if "unittest" in tests:
        return solution + tests + "\nunittest.main(exit=True, verbosity=0)\n"
    return solution + tests + "\ntest_answer()\n"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def sandbox_run(settings: SandboxSettings, job: tuple[str, str], n: int) -> dict:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = await run_tests(*job, settings=settings)
        lat.append(time.perf_counter() - t0)
        assert out.ok, out.feedback()
    t0 = time.perf_counter()
    outs = await asyncio.gather(*(run_tests(*job, settings=settings) for _ in range(n)))
    elapsed = time.perf_counter() - t0
    assert all(o.ok for o in outs)
    return {"median_ms": statistics.median(lat) * 1000, "p90_ms": pct(lat, 0.9) * 1000,
            "jobs_s": n / elapsed}  # fmt: skip


def bare_run(argv_prefix: list[str], script: Path, n: int) -> dict:
    def one() -> float:
        t0 = time.perf_counter()
        p = subprocess.run([*argv_prefix, str(script)], capture_output=True, cwd=script.parent)
        assert p.returncode == 0, p.stderr
        return time.perf_counter() - t0

    lat = [one() for _ in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda _: one(), range(n)))
    elapsed = time.perf_counter() - t0
    return {"median_ms": statistics.median(lat) * 1000, "p90_ms": pct(lat, 0.9) * 1000,
            "jobs_s": n / elapsed}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200, help="jobs per measurement")
    args = ap.parse_args()
    settings = SandboxSettings(workers=2, limits=Limits())
    pool = get_pool(settings)
    asyncio.run(pool.start())
    layers = pool.last_layers
    off = [la.name for la in layers if la.required and not la.ok]
    print(f"isolation: backend={settings.backend}, layers on: "
          f"{', '.join(la.name for la in layers if la.ok)}" + (f"; OFF: {off}" if off else ""))  # fmt: skip
    n = args.jobs
    python = sys.executable
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for label, job, target_ms in (("trivial", TRIVIAL, 10.0), ("unittest", UNITTEST, None)):
            script = Path(tmp) / f"job_{label}.py"
            script.write_text(bare_script(*job))
            asyncio.run(sandbox_run(settings, job, 20))  # warm-up
            sb = asyncio.run(sandbox_run(settings, job, n))
            naive = bare_run([python], script, max(20, n // 4))
            lean = bare_run([python, "-I", "-S"], script, max(20, n // 4))
            best = max(naive["jobs_s"], lean["jobs_s"])
            ratio = sb["jobs_s"] / best
            print(f"\n[{label}] {n} jobs, 2 workers")
            for name, r in (("sandbox", sb), ("bare python", naive), ("bare python -I -S", lean)):
                print(f"  {name:<18} median {r['median_ms']:7.2f} ms  p90 {r['p90_ms']:7.2f} ms"
                      f"  {r['jobs_s']:8.1f} jobs/s")  # fmt: skip
            print(f"  ratio sandbox / best bare jobs/s: {ratio:.2f}x (target >= 3x)")
            if target_ms is not None:
                print(f"  sandbox median {sb['median_ms']:.2f} ms (target <= {target_ms} ms)")
                ok &= sb["median_ms"] <= target_ms
            ok &= ratio >= 3
    print(f"\nload average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("targets met" if ok else "targets NOT met on this run (see figures above)")
    pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
