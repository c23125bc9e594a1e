"""Turning an HTTP request body into a job spec the supervisor can run, safely.

A request names a recipe in `recipes/` or carries one inline. Either way the body is
untrusted, so before anything reads a file or compiles a template:

- the body must match `schemas/job.json` (errors list every JSON path that is wrong);
- a recipe name is a plain name (no `/`, no `..`) and must resolve to a file directly in
  the service's `recipes/` folder, symlinks included;
- every value that is a file path, in the recipe after `${setting}` substitution and in
  the settings themselves, must resolve inside an allowed root (the project's
  `templates/`, `verifiers/`, `recipes/`, `data/`, plus `--allow-root` folders);
- inline Jinja2 (an inline `prompt:`) may not reach private attributes, `attr`, or
  `format`: the server-side template injection routes to code execution.

Only then is the recipe loaded, with the engine's own validation (settings, steps,
verifier configs), so a bad recipe is a 400 with the engine's message and not a failed job.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Config keys whose string values are file paths (or content names) in recipes.
PATH_KEYS = frozenset(
    {
        "template", "templates", "input", "inputs", "path", "paths", "file", "files", "dir",
        "documents", "docs", "corpus", "real", "anchor", "eval_sets", "synthetic", "topics",
        "seeds", "out", "output", "source", "rubric", "prompt_file", "tests", "solution",
    }
)  # fmt: skip
BUDGET_KEYS = ("max_attempts", "max_seconds", "max_cost_usd", "max_tokens")
CONTENT_DIRS = ("templates", "verifiers", "recipes", "data")


class RequestError(Exception):
    """A 4xx answer: `status`, a one-line `message`, and `details` (a list of strings)."""

    def __init__(
        self,
        status: int,
        message: str,
        details: Sequence[str] = (),
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, list(details)
        self.retry_after = retry_after  # seconds, for a 429's Retry-After (default 5)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Where recipes come from and which folders a job may read."""

    recipes_dir: Path
    project_root: Path
    allow_roots: tuple[Path, ...] = ()

    @property
    def roots(self) -> tuple[Path, ...]:
        own = tuple((self.project_root / d).resolve() for d in CONTENT_DIRS)
        return own + tuple(p.resolve() for p in self.allow_roots)


def new_job_id() -> str:
    return secrets.token_hex(6)


def parse_body(raw: bytes, max_depth: int) -> Any:
    """The JSON body, refusing one nested deeper than `max_depth` (the validators recurse)
    with the line and column where it gets too deep."""
    import json

    try:
        body = json.loads(raw)
    except RecursionError:
        body = None
    except ValueError as exc:
        raise RequestError(400, "the body is not valid JSON", [str(exc)]) from None
    else:
        if _depth(body, max_depth) <= max_depth:
            return body
    line, col = _too_deep_at(raw, max_depth)
    raise RequestError(
        400,
        "the body is nested too deeply",
        [f"line {line}, column {col}: more than {max_depth} levels of arrays and objects"],
    )


def _depth(obj: Any, limit: int) -> int:
    """How deep `obj` nests, counting no further than `limit + 1`; not recursive."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > limit:
                break
            values = item.values() if isinstance(item, dict) else item
            stack.extend((v, depth + 1) for v in values)
    return deepest


def _too_deep_at(raw: bytes, max_depth: int) -> tuple[int, int]:
    depth, line, col, in_str, escaped = 0, 1, 0, False, False
    for byte in raw:
        col += 1
        if byte == 0x0A:
            line, col = line + 1, 0
        elif in_str:
            escaped, in_str = (False, True) if escaped else (byte == 0x5C, byte != 0x22)
        elif byte == 0x22:
            in_str = True
        elif byte in b"[{":
            depth += 1
            if depth > max_depth:
                return line, col
        elif byte in b"]}":
            depth -= 1
    return line, col


def build_spec(body: Any, policy: Policy, job_dir: Path) -> dict[str, Any]:
    """Validate `body` and return the spec; writes an inline recipe to `job_dir`.
    Blocking (it loads the recipe): call it in a thread."""
    import yaml

    from synth.schema import errors, packaged

    problems = errors(body, packaged("job.json"))
    if problems:
        raise RequestError(400, "invalid job request", problems)
    settings = {**(body.get("settings") or {}), **(body.get("overrides") or {})}
    # A setting's text can land in any template through `${name}`: it is as untrusted as
    # an inline recipe, whichever recipe it is for.
    _check_inline_templates(settings, where="$.settings")
    recipe = body.get("recipe", None)
    if isinstance(recipe, dict):
        raw, label = recipe, "inline"
        _check_inline_templates(raw)
    else:
        file = recipe_file(str(recipe), policy)
        raw, label = _load_raw(file, policy), str(recipe)
    _check_paths(raw, settings, policy)
    if isinstance(recipe, dict):
        job_dir.mkdir(parents=True, exist_ok=True)
        file = job_dir / "recipe.yaml"
        file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    try:
        from synth.api import resolve

        loaded = resolve(file, settings=settings, model=body.get("model"))
    except ConfigError as exc:
        if isinstance(recipe, dict):  # a refused job leaves nothing behind
            shutil.rmtree(job_dir, ignore_errors=True)
        raise _does_not_load(
            exc, policy, inline=file if isinstance(recipe, dict) else None
        ) from None
    except BaseException:
        if isinstance(recipe, dict):
            shutil.rmtree(job_dir, ignore_errors=True)
        raise
    return {
        "recipe": label if label == "inline" else loaded.name,
        "recipe_file": str(file.resolve()),
        "n": int(body["n"]),
        "seed": int(body.get("seed", secrets.randbelow(2**31))),
        "model": body.get("model"),
        "settings": settings,
        **{
            k: body[k]
            for k in ("max_attempts", "max_seconds", "max_cost_usd", "max_tokens")
            if k in body
        },
        "label": body.get("label"),
    }


def recipe_file(name: str, policy: Policy) -> Path:
    """The file for a recipe name, never outside `recipes/`."""
    if not NAME.fullmatch(name) or ".." in name:
        raise RequestError(
            400,
            "invalid recipe name",
            [f"{name!r}: a recipe name is letters, digits, '.', '_' and '-' (no paths)"],
        )
    base = policy.recipes_dir.resolve()
    for suffix in (".yaml", ".yml"):
        candidate = (base / f"{name}{suffix}").resolve()
        if candidate.parent == base and candidate.is_file():
            return candidate
    raise RequestError(
        404, f"no recipe named {name!r}", [f"known: {', '.join(list_recipes(policy)) or 'none'}"]
    )


def list_recipes(policy: Policy) -> list[str]:
    base = policy.recipes_dir
    if not base.is_dir():
        return []
    return sorted(p.stem for p in base.iterdir() if p.suffix in (".yaml", ".yml"))


def _load_raw(file: Path, policy: Policy) -> Any:
    from synth.content import load_yaml

    try:
        return load_yaml(file)
    except ConfigError as exc:
        raise _does_not_load(exc, policy) from None


def _does_not_load(exc: ConfigError, policy: Policy, inline: Path | None = None) -> RequestError:
    """The engine's message, without the server's paths (`templates/x.yaml`, not
    `/srv/synth/templates/x.yaml`)."""
    from synth.redaction import scrub_paths

    roots: list[tuple[str | Path, str]] = [(policy.project_root.resolve(), "")]
    roots += [(r, f"<allowed root {i}>/") for i, r in enumerate(policy.allow_roots)]
    if inline is not None:
        roots += [(inline.resolve(), "<inline recipe>"), (inline, "<inline recipe>")]
    return RequestError(400, "the recipe does not load", scrub_paths(str(exc), roots).splitlines())


def _check_paths(raw: Any, settings: dict[str, Any], policy: Policy) -> None:
    """Every path-like value, after substitution, resolves inside an allowed root."""
    from synth.runner.recipe import resolve_settings, substitute

    if not isinstance(raw, dict) or not isinstance(raw.get("settings") or {}, dict):
        return  # the engine's own validation says what is wrong
    try:
        merged = resolve_settings({**(raw.get("settings") or {}), **settings}, file="<recipe>")
        body = {k: v for k, v in raw.items() if k != "settings"}
        resolved = substitute(body, merged, file="<recipe>", path="$", used=set())
    except ConfigError as exc:
        raise _does_not_load(exc, policy) from None
    bad = [
        f"{where}: {value!r} is outside the allowed folders"
        for where, key, value in _strings({"recipe": resolved, "settings": merged}, "$", None)
        if _looks_like_path(key, value) and not _inside(value, policy)
    ]
    if bad:
        raise RequestError(
            400,
            "the recipe points at files outside the allowed folders",
            bad + [f"allowed: {', '.join(str(r) for r in policy.roots)}"],
        )


def _strings(obj: Any, where: str, key: str | None) -> Iterator[tuple[str, str | None, str]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, f"{where}.{k}", str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{where}[{i}]", key)
    elif isinstance(obj, str):
        yield where, key, obj


def _looks_like_path(key: str | None, value: str) -> bool:
    if value.startswith(("/", "~")) or "../" in value or "..\\" in value or value == "..":
        return True
    if key in PATH_KEYS:
        return "/" in value or "\\" in value or bool(Path(value).suffix)
    return False


def _inside(value: str, policy: Policy) -> bool:
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else policy.project_root / path).resolve()
    return any(path == root or path.is_relative_to(root) for root in policy.roots)


def _check_inline_templates(raw: Any, where: str = "$") -> None:
    """Refuse Jinja2 in a request body (an inline recipe, a setting) that reaches Python
    internals. The engine renders in a sandbox too; this refuses the job before it runs.
    Recipe files are trusted, request bodies not."""
    import jinja2
    from jinja2 import nodes

    env = jinja2.Environment()
    bad: list[str] = []
    for at, _, text in _strings(raw, where, None):
        if "{{" not in text and "{%" not in text and "{#" not in text:
            continue
        try:
            tree = env.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            bad.append(f"{at}: template syntax error: {exc.message}")
            continue
        for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Const)):
            if isinstance(node, nodes.Getattr) and (
                node.attr.startswith("_") or node.attr in ("format", "format_map", "mro")
            ):
                bad.append(f"{at}: attribute {node.attr!r} is not allowed")
            elif isinstance(node, nodes.Getitem) and not (
                isinstance(node.arg, nodes.Const)
                and not (isinstance(node.arg.value, str) and node.arg.value.startswith("_"))
            ):
                bad.append(f"{at}: only constant, non-private [keys] are allowed")
            elif isinstance(node, nodes.Filter) and node.name in ("attr", "format"):
                bad.append(f"{at}: the {node.name!r} filter is not allowed")
            elif (
                isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value
            ):
                bad.append(f"{at}: strings naming dunder attributes are not allowed")
    if bad:
        what = "the job's settings" if where == "$.settings" else "the inline recipe"
        raise RequestError(400, f"unsafe template in {what}", bad)
