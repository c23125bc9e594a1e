"""Turning a solution and its tests into a job, and what the job did into a verdict.

"passed" only when: the trusted runner's report parses, starts and ends, names exactly the
tests the parent found in the source (zero tests never passes), every one of them passed
*and* every recorded check holds again here, on plain values and on the literals this side
parsed itself; and the process exited 0, without running into a limit on the way (a job
that catches its own MemoryError or failed fork is `resource_limit`, where the kernel
counted it: the slot's memory and pids cgroups). Exit status alone never passes. Failing
verdicts are distinct: timeout, memory, output_limit, resource_limit, crash, import_error,
syntax_error, no_tests, test_mismatch, tests_redefine_solution, tests_failed,
sandbox_error."""

from __future__ import annotations

import ast
import json
import re
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from synth.sandbox.limits import SandboxLimits
from synth.sandbox.pool import Job, RawResult
from synth.sandbox.runtime.encode import decode, evaluate
from synth.sandbox.runtime.rewrite import Plan, analyze

MAX_SOURCE = 1 << 20
LANGUAGES = {"python": ".py", "javascript": ".js"}


@dataclass(frozen=True)
class TestResult:
    name: str
    status: str  # passed | failed | error | skipped | not_run
    error: str = ""
    ms: float = 0.0


@dataclass(frozen=True)
class JobOutcome:
    """The verdict on one run, with per-test results. `reason` is "passed" when ok."""

    ok: bool
    reason: str
    detail: str = ""
    language: str = "python"
    tests: tuple[TestResult, ...] = ()
    stdout: str = ""
    stderr: str = ""
    wall_ms: float = 0.0
    cpu_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return sum(t.status == "passed" for t in self.tests)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for lineage (outputs trimmed: records must stay small)."""
        return {
            "ok": self.ok,
            "reason": self.reason,
            "detail": self.detail[:2000],
            "language": self.language,
            "tests": [asdict(t) for t in self.tests],
            "passed": self.passed,
            "total": len(self.tests),
            "stdout": self.stdout[-1000:],
            "stderr": self.stderr[-1000:],
            "wall_ms": self.wall_ms,
            "cpu_ms": self.cpu_ms,
        }

    def feedback(self, limit: int = 3000) -> str:
        """What went wrong, in words a model can act on (the fix loop sends this)."""
        lines = [f"verdict: {self.reason}" + (f" - {self.detail}" if self.detail else "")]
        for t in self.tests:
            if t.status != "passed":
                lines.append(f"{t.name}: {t.status}" + (f"\n{t.error}" if t.error else ""))
        if self.stdout.strip() and not self.ok:
            lines.append("stdout (end):\n" + self.stdout.strip()[-500:])
        if self.stderr.strip() and not self.ok:
            lines.append("stderr (end):\n" + self.stderr.strip()[-800:])
        text = "\n".join(lines)
        return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(reason: str, detail: str, language: str, **kw: Any) -> JobOutcome:
    return JobOutcome(False, reason, detail, language, **kw)


# -- building jobs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    job: Job | None
    expected: list[str]
    recheck: Callable[[dict[str, Any]], tuple[str, str]]
    early: JobOutcome | None = None


def prepare(
    solution: str, tests: str, language: str, limits: SandboxLimits, module: str = "solution"
) -> Prepared:
    if language not in LANGUAGES:
        out = fail("unsupported_language", f"no runner for {language!r}", language)
        return Prepared(None, [], _no_recheck, out)
    if len(solution) > MAX_SOURCE or len(tests) > MAX_SOURCE:
        out = fail("too_large", "solution or tests larger than 1 MiB", language)
        return Prepared(None, [], _no_recheck, out)
    if language == "python":
        return _prepare_python(solution, tests, limits, module)
    return _prepare_js(solution, tests, limits)


def _no_recheck(ev: dict[str, Any]) -> tuple[str, str]:
    return "failed", "no plan"


def _prepare_python(solution: str, tests: str, limits: SandboxLimits, module: str) -> Prepared:
    lang = "python"
    if not module.isidentifier() or module.startswith("test"):
        module = "solution"
    try:
        sol_tree = ast.parse(solution, f"{module}.py")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return Prepared(None, [], _no_recheck, fail("syntax_error", f"solution: {exc}", lang))
    try:
        test_tree, plan = analyze(tests, "test_solution.py")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return Prepared(None, [], _no_recheck, fail("syntax_error", f"tests: {exc}", lang))
    if not plan.tests:
        out = fail("no_tests", "no test_* functions, TestCase methods or asserts found", lang)
        return Prepared(None, [], _no_recheck, out)
    shadowed = _defined(sol_tree) & _defined(test_tree)
    if shadowed:
        out = fail(
            "tests_redefine_solution",
            f"the tests define their own {', '.join(sorted(shadowed))}, so they would not "
            "test the solution",
            lang,
        )
        return Prepared(None, plan.tests, _no_recheck, out)
    job = Job(
        "python",
        {f"{module}.py": solution, "test_solution.py": tests},
        limits,
        {"solution_file": f"{module}.py", "tests_file": "test_solution.py", "module": module},
    )
    return Prepared(job, plan.tests, lambda ev: _recheck_python(plan, ev))


def _defined(tree: ast.Module) -> set[str]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {n.name for n in tree.body if isinstance(n, kinds) and not n.name.startswith("test")}


_JS_TEST = re.compile(r"""(?<![\w.$])(?:test|it)\s*\(\s*(['"`])((?:\\.|(?!\1).)*?)\1""")
_JS_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def js_test_names(source: str) -> list[str]:
    names: list[str] = []
    for m in _JS_TEST.finditer(_JS_COMMENT.sub("", source)):
        if m.group(2) not in names:
            names.append(m.group(2))
    return names


def _prepare_js(solution: str, tests: str, limits: SandboxLimits) -> Prepared:
    names = js_test_names(tests)
    if not names:
        out = fail("no_tests", 'no test("name", ...) calls with literal names found', "javascript")
        return Prepared(None, [], _no_recheck, out)
    job = Job(
        "node",
        {"solution.js": solution, "test_solution.js": tests},
        limits,
        {
            "argv": ["solution.js", "test_solution.js"],
            "node_args": [f"--max-old-space-size={max(16, limits.memory_mb // 2)}"],
        },
    )
    return Prepared(job, names, _recheck_js)


# -- re-checking a test in the parent ------------------------------------------------------


def _recheck_python(plan: Plan, ev: dict[str, Any]) -> tuple[str, str]:
    checks = ev.get("checks")
    if not isinstance(checks, list):
        return "failed", "malformed report: checks"
    for chk in checks:
        bad = _bad_python_check(plan, chk)
        if bad:
            return "failed", bad
    if plan.sites_per_test.get(ev["name"], 0) > 0 and not checks:
        return "failed", "no assertion ran (the test returned before its asserts)"
    return "passed", ""


def _bad_python_check(plan: Plan, chk: Any) -> str:
    if not isinstance(chk, dict):
        return "malformed report: check"
    site = plan.sites.get(chk.get("id"))  # type: ignore[arg-type]
    if site is None:
        return "the report names an assertion that is not in the tests"
    where = f"line {site.line}"
    if chk.get("ok") is not True:
        return f"{where}: a failed assertion was caught inside the test"
    if chk.get("big") is True:
        return ""
    if site.kind == "raises":
        raised, expected = chk.get("raised"), chk.get("expected")
        if not isinstance(raised, list) or not isinstance(expected, list):
            return f"{where}: malformed raises check"
        return "" if set(map(str, expected)) & set(map(str, raised)) else f"{where}: wrong error"
    values = chk.get("v")
    n = len(site.ops) + 1 if site.kind == "cmp" else 2 if site.kind == "count_eq" else 1
    if not isinstance(values, list) or len(values) != n:
        return f"{where}: malformed check values"
    values = [site.literals.get(i, v) for i, v in enumerate(values)]
    idn = chk.get("idn")
    identity: list[Any] = idn if isinstance(idn, list) else []
    try:
        ok = evaluate(site.kind, site.ops, [decode(v) for v in values], identity)
    except Exception:  # a malformed tree or an incomparable pair fails the check
        ok = False
    return "" if ok else f"{where}: the recorded values do not satisfy the assertion"


def _recheck_js(ev: dict[str, Any]) -> tuple[str, str]:
    checks = ev.get("checks")
    if not isinstance(checks, list):
        return "failed", "malformed report: checks"
    if not checks:
        return "failed", "no assertion ran (use assertEqual/assertTrue/... in every test)"
    for chk in checks:
        if not isinstance(chk, dict) or chk.get("ok") is not True:
            return "failed", "a failed assertion was caught inside the test"
        if chk.get("big") is True or chk.get("op") == "throws":
            continue
        try:
            ok = _js_holds(str(chk.get("op")), [decode(v) for v in chk.get("v")])  # type: ignore[union-attr]
        except Exception:
            ok = False
        if not ok:
            return "failed", "the recorded values do not satisfy the assertion"
    return "passed", ""


def _js_holds(op: str, vals: list[Any]) -> bool:
    if op == "eq":
        return bool(vals[0] == vals[1])
    if op == "ne":
        return bool(vals[0] != vals[1])
    if op == "true":
        return vals[0] is True
    if op == "false":
        return vals[0] is False
    return False


# -- the verdict -----------------------------------------------------------------------------

_MEMORY = re.compile(
    r"MemoryError|heap out of memory|Fatal process OOM|Array buffer allocation failed|"
    r"Cannot allocate memory|std::bad_alloc"
)


def judge(prep: Prepared, raw: RawResult, limits: SandboxLimits, language: str) -> JobOutcome:
    common: dict[str, Any] = {
        "stdout": raw.stdout[-4000:],
        "stderr": raw.stderr[-4000:],
        "wall_ms": raw.wall_ms,
        "cpu_ms": raw.cpu_ms,
    }
    if raw.error:
        return fail("sandbox_error", raw.error[-1000:], language, **common)
    events = _events(raw.report)
    tests, running, module_error, ended = _collect(events or [], prep)
    common["tests"] = tuple(tests.get(n) or TestResult(n, "not_run") for n in prep.expected)
    texts = " ".join([raw.stderr[-4000:], module_error, *(t.error for t in tests.values())])
    if raw.output_exceeded or raw.report_overflow:
        what = "report" if raw.report_overflow else f"{raw.output_bytes} bytes of output"
        return fail("output_limit", f"{what} exceeds {limits.output_kb} KiB", language, **common)
    if raw.oom_killed:  # the slot's memory cgroup killed part of the job: that is the cause
        return fail("memory", "the job's processes together exceeded the slot's memory limit",
                    language, **common)  # fmt: skip
    if raw.timed_out or raw.signal == signal.SIGXCPU:
        where = f" in {running}" if running else ""
        limit = f"wall {limits.wall_s} s" if raw.timed_out else f"cpu {limits.cpu_s} s"
        return fail("timeout", f"exceeded the {limit} limit{where}", language, **common)
    if raw.signal == signal.SIGXFSZ:
        return fail("output_limit", f"a file exceeded {limits.file_mb} MiB", language, **common)
    near_limit = raw.maxrss_kb * 1024 >= 0.8 * (limits.memory_mb << 20)
    if _MEMORY.search(texts) or (raw.signal in _CRASH_SIGNALS and near_limit):
        return fail(
            "memory", f"exceeded the {limits.memory_mb} MiB memory limit", language, **common
        )
    if raw.limits_hit:
        names = {
            "memory": f"the memory limit ({limits.memory_mb} MiB)",
            "nproc": f"the process limit ({limits.nproc} processes and threads)",
        }
        hit = " and ".join(names.get(k, k) for k in raw.limits_hit)
        return fail(
            "resource_limit",
            f"the job ran into {hit}; code that needs more than its limits does not pass, "
            "even when it catches the failure",
            language,
            extra={"limits_hit": list(raw.limits_hit)},
            **common,
        )
    if events is None or ended is None:
        how = f"signal {raw.signal}" if raw.signal else f"exit status {raw.exit}"
        why = "garbled report" if events is None else "the test run did not finish"
        return fail("crash", f"{why} ({how})", language, **common)
    if module_error:
        reason = "syntax_error" if module_error.startswith("SyntaxError") else "import_error"
        return fail(reason, module_error, language, **common)
    if raw.exit != 0 or raw.signal:
        return fail("crash", f"exit status {raw.exit}, signal {raw.signal}", language, **common)
    if sorted(tests) != sorted(prep.expected) or ended != len(prep.expected):
        missing = sorted(set(prep.expected) - set(tests))
        return fail(
            "test_mismatch",
            f"expected {len(prep.expected)} tests, the run reported {len(tests)}"
            + (f" (missing {', '.join(missing[:5])})" if missing else ""),
            language,
            **common,
        )
    bad = [t for t in common["tests"] if t.status != "passed"]
    if bad:
        first = bad[0]
        return fail(
            "tests_failed",
            f"{len(bad)} of {len(prep.expected)} tests failed; first: {first.name}: "
            f"{first.error.splitlines()[0] if first.error else first.status}",
            language,
            **common,
        )
    return JobOutcome(True, "passed", f"{len(prep.expected)} tests passed", language, **common)


_CRASH_SIGNALS = {signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS}


def _events(report: str) -> list[dict[str, Any]] | None:
    out = []
    for line in report.splitlines():
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            return None
        if not isinstance(ev, dict) or not isinstance(ev.get("t"), str):
            return None
        out.append(ev)
    return out


def _collect(
    events: list[dict[str, Any]], prep: Prepared
) -> tuple[dict[str, TestResult], str, str, int | None]:
    tests: dict[str, TestResult] = {}
    running, module_error, ended = "", "", None
    started = bool(events) and events[0].get("t") == "start"
    for ev in events if started else []:
        t = ev["t"]
        if t == "begin":
            running = str(ev.get("name", ""))
        elif t == "test":
            name = ev.get("name")
            if not isinstance(name, str) or name in tests:
                tests["<duplicate or bad test name>"] = TestResult("?", "error")
                continue
            status, error = str(ev.get("status")), str(ev.get("error", ""))[:2000]
            if status == "passed":
                status, why = prep.recheck(ev)
                error = why
            ms = ev.get("ms") if isinstance(ev.get("ms"), int | float) else 0.0
            tests[name] = TestResult(name, status, error, float(ms))  # type: ignore[arg-type]
            running = ""
        elif t == "module":
            module_error = str(ev.get("error", "module failed"))[:2000]
        elif t == "end":
            ended = ev.get("n") if isinstance(ev.get("n"), int) else -1
    return tests, running, module_error, ended
