"""Named generators/steps and verifiers. Built-ins register exactly as plugins do.

A third-party package exposes a module under the entry-point group `synth.plugins`;
importing it runs its `@step(...)` / `@verifier(...)` decorators:

    [project.entry-points."synth.plugins"]
    mine = "my_package.synth_plugin"
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from synth.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Entry:
    """A registered factory, the JSON Schema its recipe config must match (checked at
    load, so errors point at the recipe path), and a one-line summary for `synth list`."""

    name: str
    factory: Callable[..., Any]
    schema: dict[str, Any] | None = None
    summary: str = ""
    llm: bool = False  # the entry calls `ctx.llm`: the engine creates the client lazily


# name -> factory(**config) returning a step (async generator function (records, ctx)).
STEPS: dict[str, Entry] = {}
# name -> factory(**config) returning a verifier (async (record, ctx) -> Verdict).
VERIFIERS: dict[str, Entry] = {}

_loaded = False


def step(name: str, *, schema: dict[str, Any] | None = None, llm: bool = False) -> Callable[[F], F]:
    """Register a step factory under `name` (usable as `use: name` in a recipe).
    `llm=True` says the step calls `ctx.llm`, so a run creates the LLM client for it."""

    def deco(factory: F) -> F:
        STEPS[name] = Entry(name, factory, schema, _summary(factory), llm)
        return factory

    return deco


def verifier(
    name: str, *, schema: dict[str, Any] | None = None, llm: bool = False
) -> Callable[[F], F]:
    """Register a verifier factory under `name` (usable in a recipe's `verify:` list)."""

    def deco(factory: F) -> F:
        VERIFIERS[name] = Entry(name, factory, schema, _summary(factory), llm)
        return factory

    return deco


def _summary(factory: Callable[..., Any]) -> str:
    return (factory.__doc__ or "").strip().split("\n")[0]


def load_plugins() -> None:
    """Import the built-ins and every `synth.plugins` entry point, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    from synth import builtins  # noqa: F401  (registers on import)

    # Local plugins without packaging (and test fixtures in spawned workers): a comma-separated
    # list of importable modules. The environment reaches `--workers` processes unchanged.
    for module in filter(None, os.environ.get("SYNTH_PLUGINS", "").split(",")):
        try:
            importlib.import_module(module.strip())
        except Exception as exc:
            raise ConfigError(
                f"SYNTH_PLUGINS module {module!r} failed to import: {exc}",
                expected="a comma-separated list of importable Python modules",
                found=module,
                fix="fix the module name or PYTHONPATH, or unset SYNTH_PLUGINS",
            ) from exc

    for ep in entry_points(group="synth.plugins"):
        if ep.value == "synth.builtins":
            continue
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not take the CLI down silently
            raise ConfigError(
                f"plugin {ep.name!r} failed to load: {exc}",
                expected="an importable module",
                found=ep.value,
                fix=f"reinstall or uninstall the package that provides {ep.value}",
            ) from exc


def lookup(kind: str, name: str, *, file: str | None = None, path: str | None = None) -> Entry:
    """The entry registered as `name`, or a ConfigError that lists what exists."""
    load_plugins()
    table = STEPS if kind == "step" else VERIFIERS
    try:
        return table[name]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} {name!r}",
            file=file,
            path=path,
            expected=f"one of: {', '.join(sorted(table))}",
            found=name,
            fix=f"run `synth list` to see the {kind}s available",
        ) from None
