"""Verdict integrity through the real sandbox: reward hacks fail, correct solutions pass,
subtly wrong ones fail, and each test style the runner supports is judged right."""

from __future__ import annotations

import textwrap

import pytest
from sandbox_kit import ADD, ADD_TESTS, CALL_ATTACK, healthy, needs_node, needs_root, run

pytestmark = needs_root


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# -- reward hacking ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "solution",
    [
        "import os\nos._exit(0)\n",  # exit before any test ran
        "import os\n\ndef attack():\n    os._exit(0)\n",  # exit from inside a test
        "import sys\nsys.exit(0)\n",
        "def attack():\n    raise SystemExit(0)\n",
    ],
    ids=["exit-at-import", "exit-in-test", "sys-exit-at-import", "systemexit-in-test"],
)
def test_early_exit_never_passes(solution: str) -> None:
    out = run(solution)
    assert not out.ok
    assert out.reason in ("crash", "import_error", "tests_failed")


@pytest.mark.parametrize(
    "solution",
    [
        src(
            """
            class Anything:
                def __eq__(self, other):
                    return True
                __hash__ = object.__hash__
            def attack():
                return Anything()
            """
        ),
        src(
            """
            class Liar(int):
                def __eq__(self, other):
                    return True
                __hash__ = int.__hash__
            def attack():
                return Liar(0)
            """
        ),
        src(
            """
            class Liar(list):
                def __eq__(self, other):
                    return True
                def __iter__(self):
                    return iter([1])
            def attack():
                return Liar()
            """
        ),
    ],
    ids=["always-equal", "int-subclass", "list-subclass"],
)
def test_objects_that_equal_everything_fail(solution: str) -> None:
    out = run(solution)
    assert out.reason == "tests_failed", out.feedback()


def test_patched_unittest_fails() -> None:
    solution = src(
        """
        import unittest
        unittest.TestCase.assertEqual = lambda self, *a, **k: None
        unittest.TestCase.assertTrue = lambda self, *a, **k: None
        def double(x):
            return x * 3
        """
    )
    tests = src(
        """
        import unittest
        from solution import double
        class TestDouble(unittest.TestCase):
            def test_two(self):
                self.assertEqual(double(2), 4)
            def test_positive(self):
                self.assertTrue(double(1) == 2)
        unittest.main()
        """
    )
    out = run(solution, tests)
    assert out.reason == "tests_failed"
    assert [t.status for t in out.tests] == ["failed", "failed"]


def test_patched_pytest_helpers_fail() -> None:
    solution = src(
        """
        import pytest
        class Any:
            def __eq__(self, o): return True
        pytest.approx = lambda *a, **k: Any()
        pytest.raises = lambda *a, **k: __import__("contextlib").nullcontext()
        def third(x):
            return x / 4
        def check(x):
            return x
        """
    )
    tests = src(
        """
        import pytest
        from solution import third, check
        def test_third():
            assert third(1) == pytest.approx(0.3333, rel=1e-3)
        def test_raises():
            with pytest.raises(ValueError):
                check(-1)
        """
    )
    out = run(solution, tests)
    assert [t.status for t in out.tests] == ["failed", "failed"], out.feedback()


def test_swallowed_assertion_and_skips_do_not_count() -> None:
    tests = src(
        """
        import pytest
        from solution import add
        def test_swallow():
            try:
                assert add(1, 1) == 3
            except AssertionError:
                pass
        def test_skip():
            pytest.skip("later")
        @pytest.mark.skip(reason="flaky")
        def test_marked():
            assert add(1, 1) == 2
        """
    )
    out = run(ADD, tests)
    assert out.reason == "tests_failed"
    assert [t.status for t in out.tests] == ["failed", "skipped", "skipped"]


def test_tests_that_define_their_own_solution_are_rejected() -> None:
    tests = "def add(a, b):\n    return 3\n\ndef test_add():\n    assert add(1, 2) == 3\n"
    assert run("def add(a, b):\n    return 0\n", tests).reason == "tests_redefine_solution"


def test_zero_tests_is_a_failure() -> None:
    out = run(ADD, "from solution import add\nprint(add(1, 2))\n")
    assert out.reason == "no_tests" and not out.ok


def test_syntax_errors_are_named() -> None:
    assert run("def add(a, b) return a\n", ADD_TESTS).reason == "syntax_error"
    assert run(ADD, "def test_x(:\n    pass\n").reason == "syntax_error"
    assert run("import no_such_module_here\n", CALL_ATTACK).reason == "import_error"


# -- honest code -----------------------------------------------------------------------------


def _problem(name: str, good: str, bad: str, tests: str) -> tuple[str, str, str, str]:
    return name, src(good), src(bad), src(tests)


PROBLEMS = [
    _problem(
        "fib",
        """
        def fib(n):
            a, b = 0, 1
            for _ in range(n):
                a, b = b, a + b
            return a
        """,
        """
        def fib(n):
            a, b = 0, 1
            for _ in range(n - 1):
                a, b = b, a + b
            return a
        """,
        """
        from solution import fib
        def test_base():
            assert fib(0) == 0
            assert fib(1) == 1
        def test_ten():
            assert fib(10) == 55
        """,
    ),
    _problem(
        "is_prime",
        "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))\n",
        "def is_prime(n):\n    return all(n % d for d in range(2, int(n**0.5) + 1))\n",
        """
        from solution import is_prime
        import pytest
        @pytest.mark.parametrize("n,expected", [(1, False), (2, True), (9, False), (13, True)])
        def test_prime(n, expected):
            assert is_prime(n) is expected
        """,
    ),
    _problem(
        "mean",
        "def mean(xs):\n    return sum(xs) / len(xs)\n",
        "def mean(xs):\n    return sum(xs) // len(xs)\n",
        """
        from pytest import approx
        from solution import mean
        def test_mean():
            assert mean([1, 2]) == approx(1.5)
            assert mean([0.1, 0.2]) == approx(0.15)
        """,
    ),
    _problem(
        "sorted_copy",
        "def sorted_copy(xs):\n    return sorted(xs)\n",
        "def sorted_copy(xs):\n    xs.sort()\n    return xs\n",
        """
        import unittest
        from solution import sorted_copy
        class T(unittest.TestCase):
            def test_keeps_input(self):
                xs = [3, 1, 2]
                self.assertEqual(sorted_copy(xs), [1, 2, 3])
                self.assertEqual(xs, [3, 1, 2])
        """,
    ),
    _problem(
        "word_counts",
        "from collections import Counter\ndef word_counts(s):\n    return Counter(s.split())\n",
        "def word_counts(s):\n    return {w: 1 for w in s.split()}\n",
        """
        from solution import word_counts
        assert word_counts("a b a") == {"a": 2, "b": 1}
        assert word_counts("") == {}
        """,
    ),
    _problem(
        "parse_age",
        """
        def parse_age(s):
            n = int(s)
            if n < 0:
                raise ValueError(s)
            return n
        """,
        "def parse_age(s):\n    return abs(int(s))\n",
        """
        import pytest
        from solution import parse_age
        def test_ok():
            assert parse_age("7") == 7
        def test_negative():
            with pytest.raises(ValueError):
                parse_age("-1")
        """,
    ),
    _problem(
        "pairs",
        "def pairs(xs):\n    return [(a, b) for a, b in zip(xs, xs[1:])]\n",
        "def pairs(xs):\n    return [[a, b] for a, b in zip(xs, xs[1:])]\n",
        """
        from solution import pairs
        def test_pairs():
            assert pairs([1, 2, 3]) == [(1, 2), (2, 3)]
        """,
    ),
]


@pytest.mark.parametrize("name,good,bad,tests", PROBLEMS, ids=[p[0] for p in PROBLEMS])
def test_correct_passes_and_subtly_wrong_fails(name: str, good: str, bad: str, tests: str) -> None:
    ok = run(good, tests)
    assert ok.ok, ok.feedback()
    assert ok.tests and all(t.status == "passed" for t in ok.tests)
    wrong = run(bad, tests)
    assert wrong.reason == "tests_failed", wrong.feedback()


def test_failure_feedback_shows_values_and_lines() -> None:
    out = run(ADD.replace("a + b", "a * b"), ADD_TESTS)
    text = out.feedback()
    assert "assert 2 == 3" in text and "test_solution.py:4" in text


@needs_node
@pytest.mark.parametrize(
    "solution,ok",
    [
        ("function add(a, b) { return a + b; }\nmodule.exports = { add };\n", True),
        ("function add(a, b) { return String(a + b); }\nmodule.exports = { add };\n", False),
        (
            "class Any { equals() { return true; } toJSON() { return 3; } }\n"
            "function add(a, b) { return new Any(); }\nmodule.exports = { add };\n",
            False,
        ),
        ("process.exit(0);\n", False),
        (
            "const a = require('assert'); a.strictEqual = () => {}; globalThis.assertEqual = "
            "() => {};\nfunction add(a, b) { return 0; }\nmodule.exports = { add };\n",
            False,
        ),
    ],
    ids=["correct", "string-not-number", "always-equal", "early-exit", "patched-assert"],
)
def test_javascript_verdicts(solution: str, ok: bool) -> None:
    tests = (
        "const assert = require('assert');\nconst { add } = require('./solution');\n"
        "test('small', () => { assert.strictEqual(add(1, 2), 3); });\n"
        "test('list', () => { assertEqual([add(1, 1), add(0, 0)], [2, 0]); });\n"
    )
    out = run(solution, tests, language="javascript")
    assert out.ok is ok, out.feedback()


def test_pool_is_healthy_after_the_battery() -> None:
    healthy()
