"""The trusted Python test runner. It runs in the job process, after the privilege drop,
and writes a JSON-lines report to fd 3 (never stdout, which the job controls):

    {"t": "start"}
    {"t": "module", "file": ..., "error": ...}        solution or tests failed to load
    {"t": "begin", "name": ...}                         before each test (timeout attribution)
    {"t": "test", "name", "status", "error", "checks", "ms"}
    {"t": "end", "n": <tests run>}

Everything it needs is bound at import, in the fork server, before any job code exists. It
cannot stop code that targets the runner itself from the inside (that code shares its
process); the parent's re-check of the recorded plain values is what makes careless and
reward-hacking code fail: early exit (no "end"), objects that equal everything (not plain
data), patched assertion methods (assertions are rewritten to the helpers below)."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import re
import sys
import time
import traceback
import types
from typing import Any

from .encode import Approx, NotPlain, decode, dumps, encode, evaluate
from .rewrite import CHECK, RAISES, RAISES_CALL, Plan, analyze

_write = os.write
_perf = time.perf_counter
MAX_RECORDED_CHECKS = 1000
MAX_RECORDED_BYTES = 512 * 1024
ERROR_CHARS = 1500


class _Report:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.checks: list[dict[str, Any]] = []
        self.recorded_bytes = 0

    def emit(self, obj: dict[str, Any]) -> None:
        data = (dumps(obj) + "\n").encode("utf-8", "backslashreplace")
        view = memoryview(data)
        while view:
            n = _write(self.fd, view)
            view = view[n:]

    def record(self, entry: dict[str, Any], values_size: int) -> None:
        full = (
            len(self.checks) < MAX_RECORDED_CHECKS
            and self.recorded_bytes + values_size <= MAX_RECORDED_BYTES
        )
        if not full:
            entry = {"id": entry["id"], "ok": entry["ok"], "big": True}
        self.recorded_bytes += values_size if full else 16
        if len(self.checks) < 10 * MAX_RECORDED_CHECKS:
            self.checks.append(entry)


def _short(v: Any, limit: int = 200) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SYMBOL = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtE": "<=", "Gt": ">", "GtE": ">="}
_SYMBOL.update({"In": "in", "NotIn": "not in", "Is": "is", "IsNot": "is not"})


def _helpers(rep: _Report) -> dict[str, Any]:
    def check(sid: int, kind: str, ops: tuple[str, ...], operands: tuple[Any, ...], msg: Any):
        try:
            enc = [encode(v) for v in operands]
        except NotPlain as exc:
            rep.record({"id": sid, "ok": False, "err": str(exc)}, 64)
            raise AssertionError(f"cannot check this value: {exc}") from None
        identity = [
            operands[i] is operands[i + 1] if op in ("Is", "IsNot") else None
            for i, op in enumerate(ops)
        ]
        vals = [decode(e) for e in enc]
        ok = evaluate(kind, list(ops), vals, identity)
        text = dumps(enc)
        rep.record({"id": sid, "ok": ok, "v": enc, "idn": identity}, len(text))
        if not ok:
            if kind == "cmp":
                parts = [_short(vals[0])]
                for op, v in zip(ops, vals[1:], strict=False):
                    parts += [_SYMBOL.get(op, op), _short(v)]
                what = "assert " + " ".join(parts)
            elif kind == "truth":
                what = f"assert {_short(vals[0])}"
            elif kind == "falsy":
                what = f"assert not {_short(vals[0])}"
            else:
                what = f"assert same elements: {_short(vals[0])} vs {_short(vals[1])}"
            if msg is not None:
                what += f" ({msg()})"
            raise AssertionError(what)

    class Raises:
        def __init__(self, sid: int, expected: Any, match: str | None = None) -> None:
            self.sid, self.expected, self.match = sid, expected, match
            self.value: BaseException | None = None
            self.exception: BaseException | None = None
            self.type: type | None = None

        def _names(self) -> list[str]:
            exp = self.expected if isinstance(self.expected, tuple) else (self.expected,)
            return [getattr(e, "__name__", str(e)) for e in exp]

        def __enter__(self) -> Raises:
            return self

        def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
            if et is None:
                rep.record({"id": self.sid, "ok": False, "raised": None}, 16)
                raise AssertionError(f"DID NOT RAISE {' or '.join(self._names())}")
            ok = isinstance(et, type) and issubclass(et, self.expected)
            if ok and self.match is not None:
                ok = re.search(self.match, str(ev)) is not None
            mro = [c.__name__ for c in type.mro(et)] if isinstance(et, type) else []
            rep.record({"id": self.sid, "ok": ok, "raised": mro, "expected": self._names()}, 128)
            if not ok:
                return False  # the unexpected exception propagates: the test errors
            self.value = self.exception = ev
            self.type = et
            return True

    def raises_call(sid: int, expected: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with Raises(sid, expected) as cm:
            fn(*args, **kwargs)
        return cm

    def approx(expected: Any, rel: Any = None, abs: Any = None, **_: Any) -> Approx:
        try:
            plain = decode(encode(expected))
        except NotPlain as exc:
            raise AssertionError(f"cannot check this value: {exc}") from None
        return Approx(plain, rel, abs)

    return {CHECK: check, RAISES: Raises, RAISES_CALL: raises_call, "_synth_approx": approx}


def _error_text(exc: BaseException, files: tuple[str, ...]) -> str:
    head = f"{type(exc).__name__}: {exc}".strip()
    frames = [
        f"  {os.path.basename(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
        for f in traceback.extract_tb(exc.__traceback__)
        if os.path.basename(f.filename) in files
    ]
    text = "\n".join([head, *frames[-6:]])
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def _status(exc: BaseException) -> str:
    name = type(exc).__name__
    if name in ("Skipped", "SkipTest", "XFailed"):
        return "skipped"  # a skipped test proves nothing, so it never counts as passing
    if isinstance(exc, AssertionError) or name == "Failed":
        return "failed"
    return "error"


def run(req: dict[str, Any], report_fd: int = 3) -> None:
    rep = _Report(report_fd)
    rep.emit({"t": "start"})
    sol_file, tests_file = req["solution_file"], req["tests_file"]
    files = (sol_file, tests_file)
    sys.path.insert(0, os.getcwd())
    with open(tests_file, encoding="utf-8") as fh:
        source = fh.read()
    try:
        tree, plan = analyze(source, tests_file)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        rep.emit({"t": "module", "file": tests_file, "error": _error_text(exc, files)})
        rep.emit({"t": "end", "n": 0})
        return
    helpers = _helpers(rep)
    module_name = req.get("module", "solution")
    try:
        spec = importlib.util.spec_from_file_location(module_name, sol_file)
        assert spec is not None and spec.loader is not None
        solution = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = solution
        sys.modules.setdefault("solution", solution)
        spec.loader.exec_module(solution)
    except BaseException as exc:  # noqa: BLE001  (SystemExit at import is a failure too)
        rep.emit({"t": "module", "file": sol_file, "error": _error_text(exc, files)})
        rep.emit({"t": "end", "n": 0})
        return
    tests = types.ModuleType(os.path.splitext(tests_file)[0])
    tests.__file__ = os.path.abspath(tests_file)
    public = getattr(solution, "__all__", None) or [
        k for k in vars(solution) if not k.startswith("_")
    ]
    ns = tests.__dict__
    for k in public:
        if hasattr(solution, k):
            ns[k] = getattr(solution, k)
    ns.update(helpers)
    sys.modules[tests.__name__] = tests
    n = _run_module_body(tree, plan, ns, rep, files, tests_file)
    if n is None:
        return
    n += _run_tests(plan, ns, rep, files)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    rep.emit({"t": "end", "n": n})


def _run_module_body(
    tree: Any, plan: Plan, ns: dict[str, Any], rep: _Report, files: tuple[str, ...], fname: str
) -> int | None:
    """Execute top-level statements one by one; each top-level assert is its own test."""
    import ast

    ran = 0
    for idx, stmt in enumerate(tree.body):
        name = plan.top_level.get(idx)
        code = compile(
            ast.Module(body=[stmt], type_ignores=[]),
            fname,
            "exec",
            flags=plan.future_flags,
            dont_inherit=True,
        )
        if name is not None:
            _one(rep, name, lambda code=code: exec(code, ns), files)
            ran += 1
            continue
        try:
            exec(code, ns)
        except BaseException as exc:  # noqa: BLE001
            rep.emit({"t": "module", "file": fname, "error": _error_text(exc, files)})
            rep.emit({"t": "end", "n": ran})
            return None
    return ran


def _one(rep: _Report, name: str, call: Any, files: tuple[str, ...]) -> None:
    rep.emit({"t": "begin", "name": name})
    rep.checks = []
    rep.recorded_bytes = 0
    t0 = _perf()
    status, error = "passed", ""
    try:
        call()
    except BaseException as exc:  # noqa: BLE001  (SystemExit inside a test fails that test)
        status, error = _status(exc), _error_text(exc, files)
    ms = round((_perf() - t0) * 1000, 3)
    rep.emit(
        {
            "t": "test",
            "name": name,
            "status": status,
            "error": error,
            "checks": rep.checks,
            "ms": ms,
        }
    )


def _run_tests(plan: Plan, ns: dict[str, Any], rep: _Report, files: tuple[str, ...]) -> int:
    ran = 0
    class_state: dict[str, Any] = {}
    names = [t for t in plan.tests if t not in plan.top_level.values()]
    for i, name in enumerate(names):
        cls_name, _, meth = name.rpartition(".")
        if cls_name:
            _one(rep, name, lambda c=cls_name, m=meth: _call_method(ns, c, m, class_state), files)
            last = i + 1 == len(names) or not names[i + 1].startswith(cls_name + ".")
            if last and cls_name in class_state:
                td = getattr(class_state.pop(cls_name), "tearDownClass", None)
                if callable(td):
                    try:
                        td()
                    except Exception:
                        pass
        else:
            _one(rep, name, lambda n=name: _call_function(ns.get(n), n), files)
        ran += 1
    return ran


def _marks(fn: Any) -> list[Any]:
    marks = getattr(fn, "pytestmark", [])
    return list(marks) if isinstance(marks, list | tuple) else []


def _cases(fn: Any) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = [{}]
    for mark in reversed(_marks(fn)):
        name = getattr(mark, "name", "")
        if name in ("skip", "xfail") or (name == "skipif" and any(getattr(mark, "args", ()))):
            raise _skip(f"marked {name}")
        if name != "parametrize":
            continue
        argnames, argvalues = mark.args[0], mark.args[1]
        if isinstance(argnames, str):
            argnames = [a.strip() for a in argnames.split(",") if a.strip()]
        expanded = []
        for case in cases:
            for value in argvalues:
                value = getattr(value, "values", value)  # pytest.param(...)
                vals = value if len(argnames) > 1 else (value,)
                if len(argnames) == 1 and isinstance(value, tuple) and len(value) == 1:
                    vals = value
                expanded.append({**case, **dict(zip(argnames, vals, strict=False))})
        cases = expanded
    return cases


class Skipped(Exception):
    """A test marked skip/skipif/xfail: it proves nothing, so it does not pass."""


def _skip(why: str) -> BaseException:
    return Skipped(why)


def _call_function(fn: Any, name: str) -> None:
    if not callable(fn):
        raise LookupError(f"test {name} is not defined when the tests run")
    cases = _cases(fn)
    params = [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    for i, kwargs in enumerate(cases):
        missing = [p for p in params if p not in kwargs]
        if missing:
            raise TypeError(f"fixtures are not supported (parameter {missing[0]!r})")
        try:
            result = fn(**kwargs)
            if inspect.iscoroutine(result):
                asyncio.run(result)
        except AssertionError as exc:
            if len(cases) > 1:
                raise AssertionError(f"case {i} {_short(kwargs, 120)}: {exc}") from exc
            raise


def _call_method(ns: dict[str, Any], cls_name: str, meth: str, state: dict[str, Any]) -> None:
    cls = ns.get(cls_name)
    if not isinstance(cls, type):
        raise LookupError(f"test class {cls_name} is not defined when the tests run")
    import unittest

    is_unittest = issubclass(cls, unittest.TestCase)
    if cls_name not in state:
        state[cls_name] = cls
        setup = getattr(cls, "setUpClass", None) if is_unittest else None
        if callable(setup):
            setup()
    if is_unittest:
        inst = cls(meth)
        inst.setUp()
        try:
            result = getattr(inst, meth)()
            if inspect.iscoroutine(result):
                asyncio.run(result)
        finally:
            inst.tearDown()
    else:
        inst = cls()
        if hasattr(inst, "setup_method"):
            inst.setup_method(getattr(inst, meth))
        _call_function(getattr(inst, meth), f"{cls_name}.{meth}")
