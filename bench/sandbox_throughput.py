"""Sandbox throughput: the default backend (bubblewrap + slot uid + rlimits + seccomp
(+ memory cgroup where available), fork servers) against a bare `subprocess.run([python,
file])` per job, in the same run.

Two workloads: a trivial job (one function, one test) and a small unittest file (a class
with three tests). For each: median and p90 latency of sequential jobs, and jobs/s with 2
workers. The bare baseline has no isolation at all; it runs as a naive harness does
(`python file`) and lean (`python -I -S file`, no site hooks); the ratio is also given
against the faster of the two. The three runners are interleaved in rounds so that the
load of a shared machine falls on all of them alike.

    python bench/sandbox_throughput.py [--jobs 200] [--rounds 5]
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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from synth.sandbox import SandboxLimits, SandboxSettings, get_pool, run_tests

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


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.jobs = 0
        self.seconds = 0.0

    def figures(self) -> dict[str, float]:
        lat = sorted(self.latencies)
        return {
            "median_ms": statistics.median(lat) * 1000,
            "p90_ms": lat[min(len(lat) - 1, int(0.9 * len(lat)))] * 1000,
            "jobs_s": self.jobs / self.seconds,
        }


def sandbox_round(settings: SandboxSettings, job: tuple[str, str], n: int, tally: Tally) -> None:
    async def go() -> None:
        for _ in range(n):
            t0 = time.perf_counter()
            out = await run_tests(*job, settings=settings)
            tally.latencies.append(time.perf_counter() - t0)
            assert out.ok, out.feedback()
        t0 = time.perf_counter()
        outs = await asyncio.gather(*(run_tests(*job, settings=settings) for _ in range(n)))
        tally.seconds += time.perf_counter() - t0
        tally.jobs += n
        assert all(o.ok for o in outs)

    asyncio.run(go())


def bare_round(argv: list[str], cwd: Path, n: int, tally: Tally) -> None:
    def one() -> float:
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, cwd=cwd)
        assert p.returncode == 0, p.stderr
        return time.perf_counter() - t0

    tally.latencies += [one() for _ in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as ex:
        list(ex.map(lambda _: one(), range(n)))
    tally.seconds += time.perf_counter() - t0
    tally.jobs += n


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200, help="sandbox jobs per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = ap.parse_args()
    settings = SandboxSettings(workers=2, limits=SandboxLimits())
    pool = get_pool(settings)
    asyncio.run(pool.start())
    layers = pool.last_layers
    off = [la.name for la in layers if la.required and not la.ok]
    on = ", ".join(la.name for la in layers if la.ok)
    print(f"isolation: backend={settings.backend}; on: {on}" + (f"; OFF: {off}" if off else ""))
    per_round = max(1, args.jobs // args.rounds)
    bare_n = max(4, per_round // 4)  # bare jobs are slower: fewer of them per round
    ok = True
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, job, target_ms in (("trivial", TRIVIAL, 10.0), ("unittest", UNITTEST, None)):
            script = Path(tmp) / f"job_{label}.py"
            script.write_text(bare_script(*job))
            sandbox_round(settings, job, 20, Tally())  # warm-up
            py = [sys.executable]
            runners: dict[str, tuple[Tally, Callable[[Tally], None]]] = {
                "sandbox": (Tally(), partial(sandbox_round, settings, job, per_round)),
                "bare python": (
                    Tally(),
                    partial(bare_round, [*py, str(script)], Path(tmp), bare_n),
                ),
                "bare python -I -S": (
                    Tally(),
                    partial(bare_round, [*py, "-I", "-S", str(script)], Path(tmp), bare_n),
                ),
            }
            for _ in range(args.rounds):
                for tally, step in runners.values():
                    step(tally)
                loads.append(os.getloadavg()[0])
            fig = {name: tally.figures() for name, (tally, _) in runners.items()}
            sb = fig["sandbox"]
            print(f"\n[{label}] {args.rounds} rounds, 2 workers")
            for name, r in fig.items():
                print(
                    f"  {name:<18} median {r['median_ms']:7.2f} ms  p90 {r['p90_ms']:7.2f} ms"
                    f"  {r['jobs_s']:8.1f} jobs/s"
                )
            naive = sb["jobs_s"] / fig["bare python"]["jobs_s"]
            best = sb["jobs_s"] / max(f["jobs_s"] for n, f in fig.items() if n != "sandbox")
            print(f"  sandbox jobs/s vs bare `python file`: {naive:.2f}x (target >= 3x)")
            print(f"  sandbox jobs/s vs the faster bare run: {best:.2f}x")
            ok &= naive >= 3
            if target_ms is not None:
                print(f"  sandbox median {sb['median_ms']:.2f} ms (target <= {target_ms} ms)")
                ok &= sb["median_ms"] <= target_ms
    print(f"\nload average during the run: {min(loads):.1f}-{max(loads):.1f} on "
          f"{os.cpu_count()} cores (other work on the machine slows every runner)")  # fmt: skip
    print("targets met" if ok else "targets NOT met on this run (see figures above)")
    pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
