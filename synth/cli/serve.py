"""`synth serve --host 127.0.0.1 --port 8080`: the HTTP service for jobs."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP service (submit jobs, follow them, fetch records and reports)",
        description="Serve the synth HTTP API and dashboard. Listening on anything but "
        "loopback requires a bearer token in $SYNTH_TOKEN. Jobs and their state survive "
        "restarts: the state dir holds a SQLite job store and every run.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    p.add_argument(
        "--state-dir",
        help="jobs, runs and the LLM cache (default $SYNTH_STATE_DIR or ./.synth-state)",
    )
    p.add_argument("--recipes", default="recipes", help="folder of runnable recipes")
    p.add_argument(
        "--allow-root",
        action="append",
        default=[],
        metavar="DIR",
        help="another folder inline recipes may read files from (repeatable)",
    )
    p.add_argument("--max-jobs", type=int, default=2, help="active jobs at once (429 beyond)")
    p.add_argument(
        "--max-body-kb", type=int, default=256, help="largest request body accepted (KiB)"
    )
    p.add_argument(
        "--nice",
        type=int,
        default=5,
        help="lower the service's own CPU priority by this much so a poll storm cannot slow "
        "running jobs (default 5; 0 keeps it equal)",
    )
    p.add_argument(
        "--secure-cookie",
        action="store_true",
        default=None,
        help="mark the dashboard's session cookie Secure (HTTPS only), for a service behind "
        "a TLS proxy (default: $SYNTH_SECURE_COOKIE=1, else off)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os
    from pathlib import Path

    from synth.errors import ConfigError
    from synth.files import state_dir
    from synth.service.app import ServiceConfig

    recipes = Path(args.recipes).resolve()
    if not recipes.is_dir():
        raise ConfigError(
            "recipes folder not found",
            path="--recipes",
            expected="a folder of recipe YAML files",
            found=str(recipes),
            fix="run from the project folder or pass --recipes DIR",
        )
    if args.max_jobs < 1:
        raise ConfigError("--max-jobs must be at least 1", path="--max-jobs", found=args.max_jobs)
    config = ServiceConfig(
        host=args.host,
        port=args.port,
        token=os.environ.get("SYNTH_TOKEN") or None,
        state_dir=Path(args.state_dir or state_dir()).resolve(),
        recipes_dir=recipes,
        project_root=recipes.parent,
        allow_roots=tuple(Path(p).resolve() for p in args.allow_root),
        max_jobs=args.max_jobs,
        max_body=args.max_body_kb * 1024,
        nice=max(0, args.nice),
        secure_cookie=_secure_cookie(args.secure_cookie, os.environ.get("SYNTH_SECURE_COOKIE")),
    )
    config.check()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(config))
    return 0


def _secure_cookie(flag: bool | None, env: str | None) -> bool:
    from synth.errors import ConfigError

    if flag:
        return True
    if env is None or env.strip() == "":
        return False
    value = env.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(
        "SYNTH_SECURE_COOKIE is not a boolean",
        path="SYNTH_SECURE_COOKIE",
        expected="1 or 0 (true/false, yes/no, on/off)",
        found=env,
        fix="export SYNTH_SECURE_COOKIE=1 behind TLS, or unset it",
    )


async def _serve(config: Any) -> None:
    import asyncio
    import signal

    from aiohttp import web

    from synth.service.app import create_app
    from synth.service.auth import QuietAccessLogger

    config.state_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=QuietAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, shutdown_timeout=5.0)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for host, port in (a[:2] for a in runner.addresses):
        print(f"synth: serving on http://{host}:{port}/", flush=True)
    print(f"synth: state in {config.state_dir}", flush=True)
    await stop.wait()
    print("synth: shutting down; running jobs resume on the next start", flush=True)
    await runner.cleanup()
