"""Finding user-editable content (templates, verifiers, recipes) by name or path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml

from synth.errors import ConfigError, NotFound

KINDS = ("recipes", "templates", "verifiers")
# What a content file may hold, counted before anything walks it: aliases make a small
# file a huge tree (nine levels of "billion laughs" are 387 million nodes), and deep
# nesting overflows the recursive walkers (substitution, JSON Schema, hashing).
MAX_NODES = 250_000  # with every alias expanded
MAX_DEPTH = 100

_BASE_DIR: ContextVar[Path | None] = ContextVar("synth_base_dir", default=None)
_USED: ContextVar[set[Path] | None] = ContextVar("synth_used_files", default=None)


@contextmanager
def building_from(base_dir: Path) -> Iterator[None]:
    """While a recipe's step and verifier factories run: where their content lives, so a
    factory can load its template or schema file at load time (and `synth validate` can
    report it) although factories receive only their config."""
    token = _BASE_DIR.set(base_dir)
    try:
        yield
    finally:
        _BASE_DIR.reset(token)


def building_base_dir() -> Path | None:
    """The project folder of the recipe whose factories are running, if one is."""
    return _BASE_DIR.get()


@contextmanager
def recording_used() -> Iterator[set[Path]]:
    """Collect the content files (templates, prompts, named verifiers, schema files) found
    while a recipe builds, so its hash can cover them: editing a template then resuming
    must not mix records of two versions in one run directory."""
    used: set[Path] = set()
    token = _USED.set(used)
    try:
        yield used
    finally:
        _USED.reset(token)


def note_used(path: Path) -> None:
    """Record a content file a recipe depends on (a no-op outside `recording_used`)."""
    used = _USED.get()
    if used is not None:
        used.add(path.resolve())


def digests(files: set[Path], base_dir: Path) -> dict[str, str]:
    """sha256 of each file's bytes, keyed by its path relative to the project (so moving
    the project folder keeps the hash) or, for files shipped with synth, to the package."""
    roots = (base_dir.resolve(), Path(__file__).resolve().parent)
    out = {}
    for f in sorted(files):
        key = next((str(f.relative_to(r)) for r in roots if f.is_relative_to(r)), str(f))
        out[key] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def project_root(recipe_file: str | Path) -> Path:
    """The folder that holds `recipes/`, `templates/`, `verifiers/` for a recipe file:
    the parent of `recipes/` when the recipe sits in one, else the recipe's own folder."""
    p = Path(recipe_file).resolve().parent
    return p.parent if p.name == "recipes" else p


def resolve(
    kind: str,
    ref: str,
    base_dir: Path,
    *,
    suffixes: tuple[str, ...] = (".yaml", ".yml"),
    file: str | None = None,
    path: str | None = None,
) -> Path:
    """`ref` is a name (`card-transactions`, looked up in `<root>/<kind>/`) or a path.
    Looks under the recipe's project root first, then the working directory."""
    candidates: list[Path] = []
    as_path = Path(ref)
    if as_path.suffix or "/" in ref:
        candidates += [base_dir / as_path, as_path]
    for root in dict.fromkeys([base_dir, Path.cwd()]):
        candidates += [root / kind / f"{ref}{s}" for s in suffixes]
    for c in candidates:
        if c.is_file():
            note_used(c)
            return c
    known = sorted({p.stem for root in (base_dir, Path.cwd()) for p in _listing(root / kind)})
    raise NotFound(
        f"no {kind[:-1]} named {ref!r}",
        file=file,
        path=path,
        expected=f"a file in {base_dir / kind}/ or a path; known: {', '.join(known) or 'none'}",
        found=ref,
        fix=f"check the name, or run `synth list` to see the {kind} available",
    )


def load_yaml(file: str | Path) -> Any:
    """Parse a YAML file, turning every failure into a ConfigError naming file and line."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(
            "file not found",
            file=str(file),
            expected="an existing YAML file",
            found=str(file),
            fix="check the path (relative paths are taken from the current directory)",
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(file)) from exc
    try:
        return _parse(text, str(file))
    except RecursionError:
        raise ConfigError(
            "nested too deeply to read",
            file=str(file),
            expected=f"at most {MAX_DEPTH} levels of nesting",
            fix="flatten the file",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            f"malformed YAML: {problem}",
            file=str(file),
            path=where,
            expected="valid YAML",
            fix="fix the syntax at the line shown (indentation and ':' are the usual causes)",
        ) from exc


def _parse(text: str, file: str) -> Any:
    """`yaml.safe_load`, refusing a document too deep or too big once aliases expand."""
    loader = _CountingLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except _TooDeep as exc:
            raise _too_big(file, exc.mark, "nested too deeply", "nesting") from None
        if node is None:
            return None
        _check_size(node, file)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


class _CountingLoader(yaml.SafeLoader):
    """Stops composing past `MAX_DEPTH` levels, before Python's own recursion limit."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_size(root: yaml.Node, file: str) -> None:
    """Count the nodes of the tree as a walker would see it (every alias expanded),
    without expanding anything: each node's size is computed once, bottom up."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            if id(node) in open_:
                raise _too_big(file, node.start_mark, "an alias refers to itself", "recursion")
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        open_.discard(id(node))
        size = 1 + sum(sizes[id(c)] for c in children)
        if size > MAX_NODES:
            raise _too_big(file, node.start_mark, "too many values once aliases expand", "size")
        sizes[id(node)] = size


def _too_big(file: str, mark: Any, message: str, kind: str) -> ConfigError:
    expected = {
        "nesting": f"at most {MAX_DEPTH} levels of nesting",
        "size": f"at most {MAX_NODES:,} values with every *alias expanded",
        "recursion": "an alias that refers to an anchor defined before it, not its own parent",
    }[kind]
    return ConfigError(
        message,
        file=file,
        path=f"line {mark.line + 1}, column {mark.column + 1}",
        expected=expected,
        found=f"the node starting at line {mark.line + 1}",
        fix="write the values out, or use fewer nested anchors and *aliases"
        if kind != "nesting"
        else "flatten the structure; no recipe, template or verifier needs this much",
    )


def _listing(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".j2")]
