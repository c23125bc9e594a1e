"""`synth list`: the recipes, templates, verifiers and steps available here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SECTIONS = ("recipes", "templates", "verifiers", "steps")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list recipes, templates, verifiers and steps (generators)",
        description="List the content in ./recipes, ./templates and ./verifiers, and the "
        "steps and verifiers registered by synth and installed plugins.",
    )
    p.add_argument("what", nargs="?", choices=SECTIONS, help="only this section")
    p.add_argument("--root", default=".", help="project folder (default: current directory)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    listing = collect(Path(args.root))
    if args.what:
        listing = {args.what: listing[args.what]}
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for section, rows in listing.items():
        print(f"{section}:")
        if not rows:
            print("  (none)")
        width = max((len(r["name"]) for r in rows), default=0)
        for r in rows:
            tag = f" [{r['kind']}]" if r.get("kind") else ""
            print(f"  {r['name']:<{width}}  {r.get('summary', '')}{tag}".rstrip())
    return 0


def collect(root: Path) -> dict[str, list[dict[str, str]]]:
    from synth import registry

    registry.load_plugins()
    verifiers = _files(root / "verifiers", kind="file")
    named = {v["name"] for v in verifiers}
    verifiers += [
        {"name": e.name, "summary": e.summary, "kind": "registered"}
        for e in sorted(registry.VERIFIERS.values(), key=lambda e: e.name)
        if e.name not in named
    ]
    return {
        "recipes": _files(root / "recipes"),
        "templates": _files(root / "templates", recursive=True),
        "verifiers": verifiers,
        "steps": [
            {"name": e.name, "summary": e.summary + (" (uses an LLM)" if e.llm else "")}
            for e in sorted(registry.STEPS.values(), key=lambda e: e.name)
        ],
    }


def _files(folder: Path, *, kind: str = "", recursive: bool = False) -> list[dict[str, str]]:
    """Content files with the first line of their `description:` (or use:) as summary."""
    if not folder.is_dir():
        return []
    pattern = "**/*" if recursive else "*"
    rows = []
    for p in sorted(folder.glob(pattern)):
        if not p.is_file() or p.suffix not in (".yaml", ".yml", ".j2", ".jinja"):
            continue
        name = str(p.relative_to(folder).with_suffix("")) if p.suffix != ".j2" else p.name
        row = {"name": name, "summary": _describe(p)}
        if kind:
            row["kind"] = kind
        rows.append(row)
    return rows


def _describe(path: Path) -> str:
    if path.suffix not in (".yaml", ".yml"):
        return "prompt template"
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return "(unreadable: run `synth validate` on it)"
    if not isinstance(data, dict):
        return ""
    text = str(data.get("description") or "").strip().split("\n")[0]
    if not text and data.get("use"):
        text = f"uses {data['use']}"
    return text
