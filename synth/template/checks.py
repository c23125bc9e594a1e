"""Load-time checks of a template's fields, each failing with file, JSON path and a fix."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from synth.errors import ConfigError

KINDS = ("faker", "random", "choice", "const", "derive", "text", "fields", "list", "cases")


def precheck(fields: Any, file: str, path: str = "$.fields") -> None:
    """Catch the likeliest mistakes before the generic schema check, with better words."""
    if not isinstance(fields, dict):
        return
    for name, raw in fields.items():
        if not isinstance(raw, dict):
            continue
        kinds = [k for k in KINDS if k in raw]
        if len(kinds) > 1:
            raise ConfigError(
                f"field {name!r} has more than one kind: {', '.join(kinds)}",
                file=file,
                path=f"{path}.{name}",
                expected=f"exactly one of {', '.join(KINDS)}",
                found=sorted(raw),
                fix="split it into two fields, or keep one kind",
            )
        if not kinds:
            raise ConfigError(
                f"field {name!r} has no kind",
                file=file,
                path=f"{path}.{name}",
                expected=f"one of {', '.join(KINDS)}",
                found=sorted(raw),
                fix="for a nested object put its fields under `fields:`; "
                "for a constant mapping use `const:`",
            )
        if isinstance(raw.get("fields"), dict):
            precheck(raw["fields"], file, f"{path}.{name}.fields")


def check_cases(specs: dict[str, dict[str, Any]], file: str, path: str) -> None:
    """A `cases` field keyed by a sibling choice must cover every value of that choice."""
    for name, spec in specs.items():
        by = spec.get("by")
        if "cases" not in spec or "default" in spec or by not in specs:
            continue
        src = specs[by].get("choice")
        if src is None:
            continue
        missing = [v for v in src if v not in spec["cases"]]
        if missing:
            raise ConfigError(
                f"no case for {by} = {missing[0]!r}",
                file=file,
                path=f"{path}.{name}.cases",
                expected=f"a case for every value of {by}: {', '.join(map(str, src))}",
                found=sorted(map(str, spec["cases"])),
                fix="add the missing cases, or a `default:`",
            )


def toposort(deps: dict[str, set[str]], file: str, path: str) -> list[str]:
    """Evaluation order: dependencies first, declaration order otherwise; a loop is an error."""
    names = list(deps)
    local = {n: deps[n] & set(names) for n in names}
    done: list[str] = []
    placed: set[str] = set()
    while len(done) < len(names):
        ready = [n for n in names if n not in placed and local[n] <= placed]
        if not ready:
            cycle = find_cycle({n: local[n] for n in names if n not in placed})
            raise ConfigError(
                f"derived fields form a cycle: {' -> '.join(cycle)}",
                file=file,
                path=f"{path}.{cycle[0]}",
                expected="derived fields that depend on each other without a loop",
                found=" -> ".join(cycle),
                fix="compute one of these fields from other fields only",
            )
        done.append(ready[0])
        placed.add(ready[0])
    return done


def check_signature(
    file: str, method: Callable[..., Any], what: str, args: Mapping[str, Any], path: str
) -> None:
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for a in args:
            if a not in params:
                close = difflib.get_close_matches(a, list(params), n=2)
                raise ConfigError(
                    f"unknown argument {a!r} for {what}",
                    file=file,
                    path=f"{path}.{a}",
                    expected=f"one of: {', '.join(params)}" if params else "no arguments",
                    found=a,
                    fix=f"did you mean {' or '.join(close)}?" if close else "remove it",
                )
    try:
        sig.bind(**dict.fromkeys(args))
    except TypeError as exc:
        raise ConfigError(
            f"{what}: {exc}",
            file=file,
            path=path,
            expected=f"arguments matching {what}{sig}",
            found=dict(args),
            fix="add the missing argument",
        ) from None


# Methods of faker.Generator itself, which are not providers.
GENERATOR_ATTRS = frozenset(
    (
        *("add_provider", "del_arguments", "format", "get_arguments", "get_formatter"),
        *("get_providers", "parse", "provider", "random", "seed", "seed_instance"),
        *("set_arguments", "set_formatter"),
    )
)


def provider_names(gen: Any) -> list[str]:
    return sorted(
        n
        for n in dir(gen)
        if not n.startswith("_") and n not in GENERATOR_ATTRS and callable(getattr(gen, n))
    )


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of a graph known to have one, as [a, b, ..., a]."""
    start = next(iter(graph))
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = next(iter(sorted(graph[node] & set(graph))))
        if node in seen:
            return [*path[seen[node] :], node]
        seen[node] = len(path)
        path.append(node)
