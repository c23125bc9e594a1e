"""The parent's side of verdict integrity, without processes: plain-data encoding, test
discovery, and judging crafted (forged, truncated, garbled) reports."""

from __future__ import annotations

import json
import math
import signal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synth.sandbox import RawResult, SandboxLimits
from synth.sandbox.grading import js_test_names, judge, prepare
from synth.sandbox.runtime.encode import NotPlain, canonical, decode, dumps, encode, evaluate
from synth.sandbox.runtime.rewrite import analyze

LIM = SandboxLimits(wall_s=2, cpu_s=1, memory_mb=256)

scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
scalars |= st.floats(allow_nan=False)
plain = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=4)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=4)
    ),
    max_leaves=20,
)


@given(plain)
def test_plain_values_survive_encoding(value: Any) -> None:
    tree = encode(value)
    assert json.loads(dumps(tree)) == tree  # the hand-written writer is valid JSON
    assert decode(json.loads(dumps(tree))) == value


@given(plain, plain)
def test_equality_on_decoded_values_is_python_equality(a: Any, b: Any) -> None:
    decoded = [decode(encode(a)), decode(encode(b))]
    assert evaluate("cmp", ["Eq"], decoded, [None]) == (a == b)


@given(st.lists(st.integers() | st.text(max_size=3), max_size=6))
def test_canonical_key_ignores_order(xs: list[Any]) -> None:
    assert canonical(set(xs)) == canonical(set(reversed(xs)))


def test_objects_that_are_not_plain_data_cannot_be_checked() -> None:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    for value in (Anything(), [Anything()], print, object(), {1: Anything()}):
        with pytest.raises(NotPlain):
            encode(value)
    assert encode(math.inf) == {"$float": "inf"}


def test_discovery_covers_every_supported_style() -> None:
    source = (
        "import unittest\nfrom solution import f\n"
        "def test_a():\n    assert f(1) == 2\n"
        "def helper():\n    assert f(0) == 0\n"
        "class TestGroup:\n    def test_b(self):\n        assert f(2) != 3\n"
        "class Cases(unittest.TestCase):\n    def test_c(self):\n"
        "        self.assertEqual(f(3), 4)\n"
        "assert f(5) == 6\n"
        "def test_a():\n    assert f(1) == 2\n"
        "if __name__ == '__main__':\n    unittest.main()\n"
    )
    _, plan = analyze(source)
    assert plan.tests == ["test_a", "TestGroup.test_b", "Cases.test_c", "line_13"]
    assert plan.sites_per_test["Cases.test_c"] == 1
    literal_sites = [s for s in plan.sites.values() if s.literals]
    assert all(1 in s.literals for s in literal_sites)  # right-hand literals are known here


def test_js_test_names_are_found_statically() -> None:
    src = "// test('commented', ...)\ntest('a', () => {});\nit(\"b\", () => {});\nmytest('c')\n"
    assert js_test_names(src) == ["a", "b"]


def _job(tests: str = "from solution import f\ndef test_f():\n    assert f(1) == 2\n"):
    return prepare("def f(x):\n    return x + 1\n", tests, "python", LIM)


def _report(*events: dict[str, Any]) -> str:
    return "".join(json.dumps(e) + "\n" for e in events)


PASS = {"t": "test", "name": "test_f", "status": "passed", "error": "",
        "checks": [{"id": 0, "ok": True, "v": [2, 2], "idn": [None]}]}  # fmt: skip


def test_a_complete_consistent_report_passes() -> None:
    raw = RawResult(exit=0, report=_report({"t": "start"}, PASS, {"t": "end", "n": 1}))
    out = judge(_job(), raw, LIM, "python")
    assert out.ok and out.reason == "passed"


@pytest.mark.parametrize(
    "raw,reason",
    [
        (RawResult(exit=0, report=""), "crash"),  # exit status alone never passes
        (RawResult(exit=0, report=_report({"t": "start"}, PASS)), "crash"),  # no end
        (RawResult(exit=0, report="{not json\n"), "crash"),
        (RawResult(exit=0, report=_report({"t": "start"}, {"t": "end", "n": 0})), "test_mismatch"),
        (
            RawResult(
                exit=0,
                report=_report(
                    {"t": "start"}, PASS, {**PASS, "name": "test_extra"}, {"t": "end", "n": 2}
                ),
            ),
            "test_mismatch",
        ),
        (
            RawResult(
                exit=0,
                report=_report(
                    {"t": "start"},
                    {**PASS, "checks": [{"id": 0, "ok": True, "v": [3, 3], "idn": [None]}]},
                    {"t": "end", "n": 1},
                ),
            ),
            "tests_failed",  # forged values: the literal 2 is the parent's own
        ),
        (
            RawResult(
                exit=0,
                report=_report(
                    {"t": "start"},
                    {**PASS, "checks": [{"id": 7, "ok": True, "v": [1, 1]}]},
                    {"t": "end", "n": 1},
                ),
            ),
            "tests_failed",  # an assertion that is not in the source
        ),
        (
            RawResult(
                exit=0, report=_report({"t": "start"}, {**PASS, "checks": []}, {"t": "end", "n": 1})
            ),
            "tests_failed",  # the test has an assert, none ran
        ),
        (RawResult(exit=1, report=_report({"t": "start"}, PASS, {"t": "end", "n": 1})), "crash"),
        (RawResult(timed_out=True), "timeout"),
        (RawResult(signal=signal.SIGXCPU), "timeout"),
        (RawResult(output_exceeded=True, output_bytes=10 << 20), "output_limit"),
        (RawResult(exit=0, stderr="MemoryError\n"), "memory"),
        (RawResult(error="server died"), "sandbox_error"),
    ],
)
def test_reports_that_must_not_pass(raw: RawResult, reason: str) -> None:
    out = judge(_job(), raw, LIM, "python")
    assert not out.ok and out.reason == reason, out


def test_no_tests_is_decided_before_running() -> None:
    prep = prepare("def f():\n    pass\n", "print('hi')\n", "python", LIM)
    assert prep.job is None and prep.early is not None and prep.early.reason == "no_tests"


def _facts(**over: Any) -> dict[str, Any]:
    from synth.sandbox.layers import _own_ns

    facts: dict[str, Any] = {
        "uid": 4242, "euid": 4242, "groups": [], "cap_eff": "0000000000000000",
        "seccomp": "2", "inet_socket": "EPERM", "pid": 2, "pids_visible": [1, 2],
        "sid_is_self": True, "stdin": "ok", "write_usr": "EROFS", "write_root": "EROFS",
        "write_dev_shm": "EROFS", "nproc": ["uid", 0],
        "ns": {n: _own_ns(n) + "-other" for n in ("net", "pid", "ipc", "uts", "mnt")},
        "env": {"PATH": "/usr/bin", "HOME": "/job/w/home"}, "environ_readable": [],
        "job_fs_bytes": 16 << 20,
        "rlimits": {"CPU": 1, "AS": 300 << 20, "FSIZE": 4 << 20, "NOFILE": 256, "NPROC": 16,
                    "CORE": 0},
    }  # fmt: skip
    facts.update(over)
    return facts


@pytest.mark.parametrize(
    "over,broken",
    [
        ({"uid": 0, "euid": 0}, "slot uid"),
        ({"cap_eff": "00000000000000e0"}, "slot uid"),
        ({"seccomp": "0", "inet_socket": "ok"}, "seccomp"),
        ({"env": {"PATH": "/usr/bin", "OPENAI_API_KEY": "x"}}, "scrubbed environment"),
        ({"environ_readable": [1]}, "other environments hidden"),
        ({"write_usr": "ok"}, "read-only system"),
        ({"write_dev_shm": "ok"}, "read-only system"),
        ({"nproc": ["jail", 3]}, "rlimits"),  # the limit was not raised by what counts too
        ({"nproc": ["uid", 5]}, "rlimits"),  # a slot uid has nothing else to count
        ({"pids_visible": [1, 2, 377]}, "pid isolation + cleanup"),
        ({"job_fs_bytes": 1 << 40}, "job tmpfs quota"),
        (
            {
                "rlimits": {
                    "CPU": 1,
                    "AS": -1,
                    "FSIZE": 4 << 20,
                    "NOFILE": 256,
                    "NPROC": 16,
                    "CORE": 0,
                }
            },
            "rlimits",
        ),  # fmt: skip
        ({"stdin": "EAGAIN"}, "stdin closed"),
    ],
)
def test_each_layer_fails_closed_on_what_the_probe_saw(over: dict[str, Any], broken: str) -> None:
    from synth.sandbox import SandboxSettings
    from synth.sandbox.layers import evaluate

    settings = SandboxSettings(disk_mb=16, limits=LIM.merged({"file_mb": 4, "nproc": 16}))
    assert all(la.ok for la in evaluate(settings, _facts(), 4242) if la.required)
    failed = [
        la.name for la in evaluate(settings, _facts(**over), 4242) if la.required and not la.ok
    ]
    assert failed == [broken]


def test_not_root_the_process_limit_counts_the_server_and_nothing_of_the_host() -> None:
    from synth.sandbox import SandboxSettings
    from synth.sandbox.layers import evaluate

    settings = SandboxSettings(disk_mb=16, limits=LIM.merged({"file_mb": 4, "nproc": 16}))

    def rlimits(nproc: list[Any], limit: int) -> Any:
        facts = _facts(uid=1000, euid=1000, nproc=nproc)
        facts["rlimits"] = {**facts["rlimits"], "NPROC": limit}
        return {la.name: la for la in evaluate(settings, facts, None)}["rlimits"]

    ok = rlimits(["jail", 1], 17)
    assert ok.ok and "16 + 1 of the server" in ok.detail
    assert not rlimits(["jail", 1], 16 + 1 + 64).ok  # a host snapshot would loosen it
    assert not rlimits(["jail", 900], 916).ok  # a jail does not hold 900 tasks of ours
    assert rlimits(["host", 70], 86).ok  # older kernels count the whole host uid


def test_a_parent_secret_seen_by_the_probe_fails_the_environment_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synth.sandbox import SandboxSettings
    from synth.sandbox.layers import evaluate

    monkeypatch.setenv("SOME_TOKEN", "tok-0123456789abcdef")
    settings = SandboxSettings(disk_mb=16, limits=LIM.merged({"file_mb": 4, "nproc": 16}))
    leaked = _facts(stdout_seen="... tok-0123456789abcdef ...")
    bad = {la.name for la in evaluate(settings, leaked, 4242) if not la.ok}
    assert "scrubbed environment" in bad
