"""`synth judge check VERIFIER... [--model M]`: how well a judge agrees with its labels.

The same measurement a run makes before it lets a judge gate (`synth.judges.calibration`),
on demand: to choose a judge model before a long run, or to see why a run refused one.
Exit 0 when every judge named passes, 1 when one does not, 2 on a configuration error."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "local/smollm2"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "judge",
        help="measure an LLM judge on its calibration set",
        description="Ask a judge verifier about its labelled calibration set "
        "(verifiers/calibration/<name>.jsonl) and report its agreement: accuracy, the "
        "correlation of its scores with the labels, and for pairwise judges how often "
        "swapping the responses flips the verdict. Results are kept in the state dir per "
        "(judge, model, prompt hash), where runs find them.",
    )
    p.add_argument("action", choices=["check"], help="what to do")
    p.add_argument("verifiers", nargs="+", metavar="VERIFIER", help="e.g. instruction-quality")
    p.add_argument(
        "--model", help=f"the judge's model (default: the verifier's, or {DEFAULT_MODEL})"
    )
    p.add_argument("--fresh", action="store_true", help="measure again, ignoring the kept result")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_check(args))


async def _check(args: argparse.Namespace) -> int:
    from synth import files
    from synth.context import Context
    from synth.judges.calibration import calibrate
    from synth.llm.client import client_for_run

    base = Path.cwd()
    judges = [_build(ref, base) for ref in args.verifiers]
    client = client_for_run(model=args.model or DEFAULT_MODEL, state_dir=files.state_dir())
    ctx = Context(seed=0, recipe_name="judge-check", base_dir=base, llm=client)
    reports = []
    try:
        for name, probe in judges:
            models = [args.model] if args.model else list(probe.models)
            for model in models:
                report = await calibrate(ctx, name, probe, model, fresh=args.fresh)
                assert report is not None  # measured when not kept from before
                reports.append(report)
    finally:
        await client.aclose()
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for r in reports:
            verdict = "passes" if r.passed else "FAILS"
            cached = " (measured before)" if r.cached else ""
            print(f"{r.judge} with {r.model}: {verdict}{cached}")
            print(f"  {r.summary()}")
            for m in r.mistakes[:5]:
                if "error" in m:
                    print(f"  item {m['item']}: {m['error']}")
                else:
                    want = "keep" if m["expected"] else "reject"
                    got = "keep" if m["got"] else "reject"
                    print(f"  item {m['item']}: expected {want}, got {got} (score {m['score']})")
    return 0 if all(r.passed for r in reports) else 1


def _build(ref: str, base: Path) -> tuple[str, Any]:
    """(name, probe) of a named verifier file or a registered judge verifier."""
    from synth import content, registry, schema
    from synth.errors import ConfigError, NotFound
    from synth.judges.calibration import probe_of

    registry.load_plugins()
    try:
        file = content.resolve("verifiers", ref, base)
    except NotFound:
        if ref not in registry.VERIFIERS:
            raise
        entry, config, name, where = registry.VERIFIERS[ref], {}, ref, ref
    else:
        raw = content.load_yaml(file)
        if not isinstance(raw, dict) or "use" not in raw:
            raise ConfigError(
                "not a verifier definition",
                file=str(file),
                expected="a YAML mapping with `use:`",
                found=type(raw).__name__,
            )
        entry = registry.lookup("verifier", raw["use"], file=str(file), path="$.use")
        config = {k: v for k, v in raw.items() if k not in ("use", "description", "name")}
        name, where = file.stem, str(file)
    if entry.schema:
        schema.check(config, entry.schema, file=where, what=f"{entry.name!r} configuration")
    with content.building_from(base):
        fn = entry.factory(**config)
    probe = probe_of(fn)
    if probe is None:
        raise ConfigError(
            f"{ref!r} is not an LLM judge",
            file=where,
            expected="a judge verifier (use: judge, ask_llm or pairwise)",
            found=entry.name,
            fix="name a judge, e.g. `synth judge check instruction-quality`",
        )
    return name, probe
