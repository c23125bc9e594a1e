"""`synth` command line. Each subcommand is a module in this package defining
`add_parser(subparsers)` (which registers the command and sets `func=run`) and
`run(args) -> int`. Heavy imports happen inside `run` so `synth --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from synth.cli._logging import add_log_arguments, configure
from synth.errors import SynthError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synth", description="Synthetic training data: recipes, verifiers, mixing."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    add_log_arguments(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_parser(sub)
    for command in sub.choices.values():
        add_log_arguments(command, top=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure(args)
    try:
        return int(args.func(args) or 0)
    except SynthError as exc:
        print(f"synth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("synth: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
