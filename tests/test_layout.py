"""The tree reads like a table of contents: one package per layer, imports one way.

Every `import` in synth/ (module level or inside a function, but not under
`if TYPE_CHECKING:`) is an edge; the graph must have no cycle, so a helper in the wrong
file shows up here instead of as a surprise at import time."""

from __future__ import annotations

import ast
from pathlib import Path

SYNTH = Path(__file__).resolve().parents[1] / "synth"
RUNTIME = SYNTH / "sandbox" / "runtime"  # copied into the jail and run as its own package


def _module(path: Path) -> str:
    parts = list(path.relative_to(SYNTH.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in SYNTH.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        skip = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the file's own package, up level - 1
                    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                    parts = package.split(".")
                    base = ".".join(
                        [*parts[: len(parts) - (node.level - 1)], *[base][: bool(base)]]
                    )
                # `from pkg import x`: the module pkg.x if there is one, else pkg itself
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            else:
                continue
            for t in targets:
                while t and t not in files and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in files and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return [*stack[stack.index(w) :], w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_synth_has_no_import_cycles() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_top_level_holds_the_kernel_and_the_public_face_only() -> None:
    modules = sorted(p.stem for p in SYNTH.glob("*.py"))
    assert len(modules) <= 15, modules


def test_no_relative_imports_outside_the_jailed_runtime() -> None:
    relative = [
        f"{p.relative_to(SYNTH.parent)}:{n.lineno}"
        for p in SYNTH.rglob("*.py")
        if RUNTIME not in p.parents
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.ImportFrom) and n.level
    ]
    assert relative == []
