"""`python -m synth.testing stub ...`: serve the stub on its own (benchmarks, by hand)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from synth.testing.stub import StubServer


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth.testing")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("stub", help="serve the fault-injecting OpenAI-compatible stub")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--max-inflight", type=int, default=None)
    p.add_argument("--rpm", type=int, default=None)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--bad-json-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the stub only listens on loopback")

    async def serve() -> None:
        stub = StubServer(
            latency=args.latency,
            jitter=args.jitter,
            max_inflight=args.max_inflight,
            rpm=args.rpm,
            retry_after=args.retry_after,
            error_rate=args.error_rate,
            bad_json_rate=args.bad_json_rate,
            seed=args.seed,
            host=args.host,
            port=args.port,
        )
        async with stub:
            print(stub.url, flush=True)
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(_main())
