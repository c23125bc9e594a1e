"""Values computed by untrusted code, reduced to plain data before anyone compares them.

An object whose `__eq__` always returns True, or a patched assertion method, fools any check
that lets the object compare itself. So every operand of a checked assertion is first
*encoded* here into a tree of JSON types (exact builtin types only, read through the base
type's own C methods so a subclass cannot lie), then decoded into fresh builtin values and
compared with `evaluate`. The sandbox does this to decide whether to raise; the parent does
it again on the report, with the literals it parsed itself. A value that is not plain data
fails the check."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal
from fractions import Fraction
from json.encoder import encode_basestring_ascii as _quote  # C function: cannot be patched
from typing import Any

MAX_DEPTH = 64
MAX_NODES = 200_000

_float_repr = float.__repr__
_int_repr = int.__repr__


class _Undefined:
    """JavaScript's `undefined`: equal only to itself (not to None, which is `null`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED = _Undefined()


class NotPlain(TypeError):
    """A value a check cannot compare safely (a custom object, a function, too large)."""


class Approx:
    """`pytest.approx` / `assertAlmostEqual` on plain data: numbers compared with a tolerance,
    containers element by element. Trusted: only ever built from already-encoded data."""

    __slots__ = ("expected", "rel", "abs")

    def __init__(self, expected: Any, rel: float | None = None, abs: float | None = None):
        self.expected, self.rel, self.abs = expected, rel, abs

    def __eq__(self, other: object) -> bool:
        return _close(other, self.expected, self.rel, self.abs)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        tol = f", rel={self.rel}" if self.rel is not None else ""
        tol += f", abs={self.abs}" if self.abs is not None else ""
        return f"approx({self.expected!r}{tol})"


def _close(a: Any, b: Any, rel: float | None, abs_: float | None) -> bool:
    if type(a) in (int, float) and type(b) in (int, float):
        if a == b:
            return True
        rel_tol = 1e-6 if rel is None else rel
        abs_tol = 1e-12 if abs_ is None else abs_
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    if type(a) in (list, tuple) and type(b) in (list, tuple):
        return len(a) == len(b) and all(_close(x, y, rel, abs_) for x, y in zip(a, b, strict=True))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel, abs_) for k in a)
    return bool(a == b)


def encode(value: Any) -> Any:
    """The plain-data tree of `value`, or NotPlain. Containers become lists or tagged dicts
    (`{"$tuple": [...]}`) so that a JSON object never appears untagged."""
    budget = [MAX_NODES]
    return _enc(value, 0, budget)


def _enc(v: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise NotPlain("value too large to check")
    if depth > MAX_DEPTH:
        raise NotPlain("value nested too deeply to check")
    t = type(v)
    if v is None or t is bool:
        return v
    if t is str:
        return v
    if t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else {"$float": _float_repr(v)}
    d = depth + 1
    if t is list:
        return [_enc(x, d, budget) for x in v]
    if t is tuple:
        return {"$tuple": [_enc(x, d, budget) for x in v]}
    if t is dict:
        return {"$dict": [[_enc(k, d, budget), _enc(x, d, budget)] for k, x in dict.items(v)]}
    if t is set or t is frozenset:
        return {"$" + t.__name__: [_enc(x, d, budget) for x in t.__iter__(v)]}
    if t is bytes or t is bytearray:
        return {"$" + t.__name__: bytes.hex(bytes(v))}
    if t is complex:
        return {"$complex": [_enc(v.real, d, budget), _enc(v.imag, d, budget)]}
    if t is Fraction:
        return {"$fraction": [int(v.numerator), int(v.denominator)]}
    if t is Decimal:
        return {"$decimal": Decimal.__str__(v)}
    if t is Approx:
        return {"$approx": [_enc(v.expected, d, budget), v.rel, v.abs]}
    # Subclasses of builtins (Counter, defaultdict, namedtuple, IntEnum, str enums) are
    # read through the base type's C methods, so overriding __iter__/__eq__ changes nothing.
    if isinstance(v, bool):
        return bool.__bool__(v)
    if isinstance(v, int):
        return int.__add__(v, 0)
    if isinstance(v, float):
        return _enc(float.__add__(v, 0.0), depth, budget)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, dict):
        return {"$dict": [[_enc(k, d, budget), _enc(x, d, budget)] for k, x in dict.items(v)]}
    if isinstance(v, list):
        return [_enc(x, d, budget) for x in list.copy(v)]
    if isinstance(v, tuple):
        return {"$tuple": [_enc(x, d, budget) for x in tuple.__getitem__(v, slice(None))]}
    if isinstance(v, frozenset):
        return {"$frozenset": [_enc(x, d, budget) for x in frozenset.__iter__(v)]}
    if isinstance(v, set):
        return {"$set": [_enc(x, d, budget) for x in set.__iter__(v)]}
    raise NotPlain(f"a {t.__name__} object is not plain data; compare plain values instead")


def decode(tree: Any, depth: int = 0) -> Any:
    """Fresh builtin values from an encoded tree (raises ValueError on a malformed tree)."""
    if depth > MAX_DEPTH + 2:
        raise ValueError("encoded value nested too deeply")
    t = type(tree)
    if tree is None or t in (bool, int, float, str):
        return tree
    d = depth + 1
    if t is list:
        return [decode(x, d) for x in tree]
    if t is not dict or len(tree) != 1:
        raise ValueError(f"malformed encoded value: {str(tree)[:80]}")
    ((tag, body),) = tree.items()
    if tag == "$tuple":
        return tuple(decode(x, d) for x in _list(body))
    if tag == "$dict":
        return {decode(k, d): decode(v, d) for k, v in _list(body)}
    if tag == "$set":
        return {decode(x, d) for x in _list(body)}
    if tag == "$frozenset":
        return frozenset(decode(x, d) for x in _list(body))
    if tag in ("$bytes", "$bytearray"):
        raw = bytes.fromhex(str(body))
        return raw if tag == "$bytes" else bytearray(raw)
    if tag == "$float":
        return float(str(body))
    if tag == "$complex":
        re_, im = _list(body)
        return complex(decode(re_, d), decode(im, d))
    if tag == "$fraction":
        n, m = _list(body)
        return Fraction(int(n), int(m))
    if tag == "$decimal":
        return Decimal(str(body))
    if tag == "$int":
        return int(str(body))
    if tag == "$undefined":
        return UNDEFINED
    if tag == "$approx":
        exp, rel, abs_ = _list(body)
        return Approx(decode(exp, d), _num(rel), _num(abs_))
    raise ValueError(f"unknown tag {tag!r}")


def _list(body: Any) -> list[Any]:
    if type(body) is not list:
        raise ValueError("malformed encoded container")
    return body


def _num(x: Any) -> float | None:
    return None if x is None else float(x)


_OPS = {
    "Eq": lambda a, b: a == b,
    "NotEq": lambda a, b: a != b,
    "Lt": lambda a, b: a < b,
    "LtE": lambda a, b: a <= b,
    "Gt": lambda a, b: a > b,
    "GtE": lambda a, b: a >= b,
    "In": lambda a, b: a in b,
    "NotIn": lambda a, b: a not in b,
}
SINGLETONS = (None, True, False)


def evaluate(kind: str, ops: list[str], values: list[Any], identity: list[Any]) -> bool:
    """Whether a check holds, on *decoded* values. `identity[i]` is what `is` gave on the
    original objects for an identity op (identity cannot be faked by `__eq__`)."""
    if kind == "truth":
        return bool(values[0])
    if kind == "falsy":
        return not values[0]
    if kind == "count_eq":
        return _counts(values[0]) == _counts(values[1])
    if kind != "cmp" or len(values) != len(ops) + 1:
        return False
    for i, op in enumerate(ops):
        a, b = values[i], values[i + 1]
        if op in ("Is", "IsNot"):
            if any(a is s or b is s for s in SINGLETONS):
                same = a is b
            else:
                same = bool(identity[i]) if i < len(identity) else False
            ok = same if op == "Is" else not same
        else:
            ok = bool(_OPS[op](a, b))
        if not ok:
            return False
    return True


def _counts(v: Any) -> Counter[str]:
    items = v.keys() if type(v) is dict else v
    return Counter(canonical(x) for x in items)


def canonical(tree_or_value: Any) -> str:
    """An order-independent text key of a decoded value (multiset comparisons)."""
    return dumps(_canon(encode(tree_or_value)))


def _canon(tree: Any) -> Any:
    if type(tree) is list:
        return [_canon(x) for x in tree]
    if type(tree) is dict:
        ((tag, body),) = tree.items()
        if tag in ("$set", "$frozenset", "$dict"):
            return {tag: sorted((_canon(x) for x in body), key=dumps)}
        return {tag: _canon(body)}
    return tree


def dumps(tree: Any) -> str:
    """Compact JSON of a tree of JSON types. Written here rather than with `json.dumps`
    so that code which patches the json module cannot rewrite what the runner reports."""
    out: list[str] = []
    _dump(tree, out)
    return "".join(out)


def _dump(v: Any, out: list[str]) -> None:
    t = type(v)
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif t is str:
        out.append(_quote(v))
    elif t is int:
        out.append(_int_repr(v))
    elif t is float:
        out.append(_float_repr(v) if math.isfinite(v) else "null")
    elif t is list or t is tuple:
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _dump(x, out)
        out.append("]")
    elif t is dict:
        out.append("{")
        for i, (k, x) in enumerate(v.items()):
            if i:
                out.append(",")
            out.append(_quote(str(k)))
            out.append(":")
            _dump(x, out)
        out.append("}")
    else:
        raise NotPlain(f"cannot write a {t.__name__} to the report")
