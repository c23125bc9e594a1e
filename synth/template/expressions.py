"""Jinja2 expressions and text templates for derived fields, compiled once into closures.

Templates say `is_fraud: {derive: "amount > 800 and hour < 6"}`. Evaluating that through
`Environment.compile_expression` costs about 6 us per call (a fresh render Context each
time), which alone would cost a Faker template ~15% of its speed. So the parsed Jinja AST
is translated into one Python lambda with the same semantics as Jinja's own (non-sandboxed)
code generator: Jinja's `getattr`/`getitem`, its filters and tests, `~` as string join.
Anything outside that subset (a filter that needs the render context, say) falls back to
Jinja itself, so the result is always what Jinja would give, only faster where possible.

Names resolve against a *stack* of dicts (constants, the record, nested objects ...); the
caller says at compile time which level each name lives in, so a lookup is one indexing
operation. Templates are trusted local content: like plain Jinja (not the sandbox), an
expression may call methods of the values it sees.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jinja2 import Environment, StrictUndefined, Undefined, meta, nodes
from jinja2.nodes import EvalContext
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg

Stack = Sequence[Mapping[str, Any]]
Compiled = Callable[[Stack], Any]


def _make_env() -> Environment:
    # Sandboxed: templates and inline recipes may come from a service client, so attribute
    # access (`x.__class__`...) and str.format go through Jinja's sandbox checks, even in
    # the expressions translated to plain Python below (they use ENV.getattr/getitem).
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    # Both draw from the global `random` module: a derived field must be a pure function of
    # the record, or the same seed would stop giving the same bytes.
    env.filters.pop("random", None)
    env.globals.pop("lipsum", None)
    return env


ENV = _make_env()
_EVAL_CTX = EvalContext(ENV)

_BINOPS = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Mod: "%",
    nodes.Pow: "**",
}
_CMPOPS = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gteq": ">=",
    "lt": "<",
    "lteq": "<=",
    "in": "in",
    "notin": "not in",
}


def parse_expression(source: str) -> nodes.Expr:
    """The Jinja AST of an expression; raises jinja2.TemplateSyntaxError."""
    parser = Parser(ENV, source, state="variable")
    expr = parser.parse_expression()
    if not parser.stream.eos:
        tok = parser.stream.current
        parser.fail(f"unexpected {tok.value!r} after the expression", tok.lineno)
    return expr


def references(tree: nodes.Expr | nodes.Template) -> set[str]:
    """Names an expression or template reads from its scope (Jinja globals excluded)."""
    if isinstance(tree, nodes.Expr):
        tree = nodes.Template([nodes.Output([tree])], lineno=1)
        tree.set_environment(ENV)
    return {n for n in meta.find_undeclared_variables(tree) if n not in ENV.globals}


def compile_expression(source: str, levels: Mapping[str, int]) -> Compiled:
    """A function of the scope stack returning what Jinja would; `levels` maps every name
    the expression reads to the stack index that holds it."""
    tree = parse_expression(source)
    try:
        return _Translator(levels).build(tree)
    except _Unsupported:
        jinja = ENV.compile_expression(source, undefined_to_none=False)
        return lambda stack: _defined(jinja(_flatten(stack)))


def compile_text(source: str, levels: Mapping[str, int]) -> Compiled:
    """Like compile_expression for a text template (`"Order {{ order_id }} is late"`)."""
    tree = ENV.parse(source)
    body = tree.body
    if len(body) == 1 and isinstance(body[0], nodes.Output):
        parts: list[nodes.Expr] = list(body[0].nodes)
        try:
            return _Translator(levels).build(nodes.Concat(parts))
        except _Unsupported:
            pass
    elif not body:
        return lambda stack: ""
    template = ENV.from_string(source)
    return lambda stack: template.render(_flatten(stack))


def parse_text(source: str) -> nodes.Template:
    """The Jinja AST of a text template; raises jinja2.TemplateSyntaxError."""
    return ENV.parse(source)


def _flatten(stack: Stack) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for level in stack:
        merged.update(level)
    return merged


class _Unsupported(Exception):
    """A construct the translator leaves to Jinja."""


def _defined(value: Any) -> Any:
    """StrictUndefined all the way: `s.split()[0]` on a blank string is an error, not a
    silent None (Jinja's compile_expression would turn it into None)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def _concat(values: Sequence[Any]) -> str:
    return "".join(map(str, values))


class _Translator:
    """Jinja expression nodes -> Python source of `lambda _s: ...`."""

    def __init__(self, levels: Mapping[str, int]) -> None:
        self.levels = levels
        self.ns: dict[str, Any] = {
            "_getattr": ENV.getattr,
            "_getitem": ENV.getitem,
            "_concat": _concat,
            "_defined": _defined,
        }
        self._ids = itertools.count()

    def build(self, tree: nodes.Expr) -> Compiled:
        code = f"lambda _s: _defined({self.visit(tree)})"
        fn: Compiled = eval(compile(code, "<synth-expression>", "eval"), self.ns)  # noqa: S307
        return fn

    def const(self, value: Any) -> str:
        name = f"_c{next(self._ids)}"
        self.ns[name] = value
        return name

    def visit(self, node: nodes.Node) -> str:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is not None:
            return method(node)
        if isinstance(node, nodes.BinExpr) and type(node) in _BINOPS:
            return f"({self.visit(node.left)} {_BINOPS[type(node)]} {self.visit(node.right)})"
        raise _Unsupported(type(node).__name__)

    def visit_Name(self, node: nodes.Name) -> str:
        if node.name in self.levels:
            return f"_s[{self.levels[node.name]}][{node.name!r}]"
        if node.name in ENV.globals:
            return self.const(ENV.globals[node.name])
        raise _Unsupported(node.name)

    def visit_Const(self, node: nodes.Const) -> str:
        return self.const(node.value)

    def visit_TemplateData(self, node: nodes.TemplateData) -> str:
        return self.const(node.data)

    def visit_Tuple(self, node: nodes.Tuple) -> str:
        if all(isinstance(i, nodes.Const) for i in node.items):
            return self.const(tuple(i.value for i in node.items))  # type: ignore[attr-defined]
        return "(" + "".join(f"{self.visit(i)}, " for i in node.items) + ")"

    def visit_List(self, node: nodes.List) -> str:
        return "[" + ", ".join(self.visit(i) for i in node.items) + "]"

    def visit_Dict(self, node: nodes.Dict) -> str:
        # A literal lookup table (`{'grocery': '5411', ...}[category]`) is built once.
        if all(
            isinstance(p.key, nodes.Const) and isinstance(p.value, nodes.Const) for p in node.items
        ):
            return self.const({p.key.value: p.value.value for p in node.items})  # type: ignore[attr-defined]
        items = (f"{self.visit(p.key)}: {self.visit(p.value)}" for p in node.items)
        return "{" + ", ".join(items) + "}"

    def visit_CondExpr(self, node: nodes.CondExpr) -> str:
        other = "None" if node.expr2 is None else self.visit(node.expr2)
        return f"({self.visit(node.expr1)} if {self.visit(node.test)} else {other})"

    def visit_And(self, node: nodes.And) -> str:
        return f"({self.visit(node.left)} and {self.visit(node.right)})"

    def visit_Or(self, node: nodes.Or) -> str:
        return f"({self.visit(node.left)} or {self.visit(node.right)})"

    def visit_Not(self, node: nodes.Not) -> str:
        return f"(not {self.visit(node.node)})"

    def visit_Neg(self, node: nodes.Neg) -> str:
        return f"(-{self.visit(node.node)})"

    def visit_Pos(self, node: nodes.Pos) -> str:
        return f"(+{self.visit(node.node)})"

    def visit_Concat(self, node: nodes.Concat) -> str:
        return "_concat((" + "".join(f"{self.visit(n)}, " for n in node.nodes) + "))"

    def visit_Compare(self, node: nodes.Compare) -> str:
        out = self.visit(node.expr)
        for op in node.ops:
            out += f" {_CMPOPS[op.op]} {self.visit(op.expr)}"
        return f"({out})"

    def visit_Getattr(self, node: nodes.Getattr) -> str:
        return f"_getattr({self.visit(node.node)}, {node.attr!r})"

    def visit_Getitem(self, node: nodes.Getitem) -> str:
        return f"_getitem({self.visit(node.node)}, {self.visit(node.arg)})"

    def visit_Slice(self, node: nodes.Slice) -> str:
        parts = [
            ("None" if p is None else self.visit(p)) for p in (node.start, node.stop, node.step)
        ]
        return f"slice({', '.join(parts)})"

    def _args(self, node: nodes.Call | nodes.Filter | nodes.Test, head: list[str]) -> str:
        args = head + [self.visit(a) for a in node.args]
        args += [f"{kw.key}={self.visit(kw.value)}" for kw in node.kwargs]
        if node.dyn_args is not None:
            args.append(f"*{self.visit(node.dyn_args)}")
        if node.dyn_kwargs is not None:
            args.append(f"**{self.visit(node.dyn_kwargs)}")
        return ", ".join(args)

    def visit_Call(self, node: nodes.Call) -> str:
        return f"{self.visit(node.node)}({self._args(node, [])})"

    def _pass(self, func: Any) -> list[str]:
        kind = _PassArg.from_obj(func)
        if kind is None:
            return []
        if kind is _PassArg.environment:
            return [self.const(ENV)]
        if kind is _PassArg.eval_context:
            return [self.const(_EVAL_CTX)]
        raise _Unsupported("needs the render context")

    def visit_Filter(self, node: nodes.Filter) -> str:
        func = ENV.filters.get(node.name)
        if func is None or node.node is None:
            raise _Unsupported(node.name)  # Jinja's own compile reports it properly
        head = [*self._pass(func), self.visit(node.node)]
        return f"{self.const(func)}({self._args(node, head)})"

    def visit_Test(self, node: nodes.Test) -> str:
        func = ENV.tests.get(node.name)
        if func is None:
            raise _Unsupported(node.name)
        head = [*self._pass(func), self.visit(node.node)]
        return f"{self.const(func)}({self._args(node, head)})"
