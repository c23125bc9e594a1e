"""`synth validate [RECIPE ...]`: check recipes without running them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check recipes (schema, steps, verifiers, templates) without running them",
        description="Load each recipe as `synth run` would, building every step and "
        "verifier, and report problems as file, JSON path, expected, found and fix. "
        "With no arguments, checks every recipe in ./recipes.",
    )
    p.add_argument("recipes", nargs="*", help="recipe files or names (default: recipes/*.yaml)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="as for `synth run`"
    )
    p.add_argument("--model", help="as for `synth run`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth.errors import ConfigError, SynthError
    from synth.runner.recipe import load, parse_overrides

    refs = list(args.recipes) or sorted(
        str(p) for p in Path("recipes").glob("*.y*ml") if p.suffix in (".yaml", ".yml")
    )
    if not refs:
        raise ConfigError(
            "no recipes to validate",
            path="recipes/",
            expected="recipe files as arguments, or a recipes/ folder here",
            found=str(Path.cwd()),
            fix="pass a recipe path: synth validate recipes/my-recipe.yaml",
        )
    overrides = parse_overrides(args.set)
    failed = 0
    for ref in refs:
        try:
            recipe = load(ref, settings=overrides, model=args.model)
        except SynthError as exc:
            failed += 1
            print(f"synth: error: {exc}", file=sys.stderr)
            continue
        steps = " -> ".join(s.use for s in recipe.steps)
        chain = ", ".join(v.name for v in recipe.chain) or "(none)"
        print(
            f"ok  {ref}: {recipe.name} (hash {recipe.hash[:12]}); steps: {steps}; verify: {chain}"
        )
    return 2 if failed else 0
