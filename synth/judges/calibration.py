"""Judges are measured before they gate.

A judge is a model, and a model can be a bad judge: the embedded 135M model answers "A"
to every pairwise question, and a judge that scores everything 4 keeps everything. Each
judge verifier ships with a small labelled calibration set (`verifiers/calibration/
<judge>.jsonl`: clearly good and clearly bad examples with the verdict they must get);
before a run lets a judge gate, `check_chain` asks the judge about its set with the
run's model and stops the run with a ConfigError if the judge does not agree with the
labels often enough, unless the verifier says `allow_uncalibrated: true`.

The measurement is cheap on purpose: it goes through the run's own LLM client (so its
response cache answers a repeat for free) and its result is kept in the state dir per
(judge, model, prompt hash), where the prompt hash covers the prompt template, the
rubric or threshold, the sampling parameters and the calibration set itself. Change any
of them and the judge is measured again.

Each probe reports accuracy (the judge's keep/reject against the label), the Pearson
correlation of its scores with the labels (a judge can be right at the threshold yet
rank at random), whether every item got the same score or verdict (such a judge is
flagged and refused even if a lopsided set let its accuracy pass), and for pairwise
judges how often swapping the two responses changed the verdict (position bias)."""

from __future__ import annotations

import json
import statistics
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from synth import files
from synth.context import Context
from synth.errors import ConfigError
from synth.llm.calls import RECORD_FAILURES
from synth.records import content_hash

FOLDER = "calibration"  # under verifiers/
CACHE_FILE = "calibration.json"  # in the state dir
DEFAULT_MIN_AGREEMENT = 0.75
# Bumped when how a judge is asked changes in code (e.g. constrained yes/no decoding), so
# results measured the old way are not reused.
METHOD = 2

# What a verifier config may say about its calibration (merged into the judges' schemas).
CONFIG_SCHEMA: dict[str, Any] = {
    "allow_uncalibrated": {
        "type": "boolean",
        "default": False,
        "description": "gate even when the judge fails (or has no) calibration; flagged",
    },
    "calibration": {
        "type": "string",
        "description": "the calibration set: verifiers/calibration/<name>.jsonl "
        "(default: the verifier's name)",
    },
    "min_agreement": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": DEFAULT_MIN_AGREEMENT,
        "description": "the accuracy on the calibration set a judge needs to gate",
    },
}


@dataclass(frozen=True, slots=True)
class Answer:
    """A judge's answer about one calibration item: whether it would keep it (for a
    pairwise item: whether it preferred the chosen response in both orders), its score,
    and for pairwise whether the swapped order changed the verdict."""

    keep: bool
    score: float | None
    flipped: bool = False


# ask(ctx, item, model) -> Answer; LLM failures propagate as RECORD_FAILURES
Ask = Callable[[Context, Mapping[str, Any], str | None], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Probe:
    """How to put one judge verifier to its calibration set. The verifier factory builds
    it (it knows its prompt, rubric and threshold) and `attach`es it to the verifier."""

    kind: str  # "rubric", "yes_no" or "pairwise": what an item of its set looks like
    ask: Ask
    # everything besides the model and the set that decides its answers (prompt template
    # source, rubric, threshold, sampling parameters), as a string to hash
    fingerprint: Callable[[Context], str]
    models: tuple[str | None, ...] = (None,)  # None: the run's model
    calibration: str | None = None
    allow_uncalibrated: bool = False
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    default_set: str | None = None  # the set of a judge used inline (`use: ask_llm`)


@dataclass(frozen=True, slots=True)
class Report:
    """How a judge did on its calibration set with one model."""

    judge: str
    model: str
    prompt_hash: str
    items: int
    accuracy: float
    min_agreement: float
    correlation: float | None = None  # Pearson of scores against labels; None if undefined
    # every score, or every verdict, the same: the judge does not tell items apart
    constant: bool = False
    errors: int = 0  # answers that could not be used (counted as wrong)
    position_flips: int | None = None  # pairwise: swapping the order changed the verdict
    cached: bool = False
    mistakes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.accuracy >= self.min_agreement and not self.constant

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        parts = [f"accuracy {self.accuracy:.2f} on {self.items} items"]
        if self.correlation is not None:
            parts.append(f"correlation {self.correlation:+.2f}")
        if self.position_flips is not None:
            parts.append(f"{self.position_flips} of {self.items} verdicts flipped by swapping")
        if self.constant:
            parts.append("the same score or verdict for every item")
        if self.errors:
            parts.append(f"{self.errors} unusable answers")
        return ", ".join(parts) + f" (needs {self.min_agreement:.2f})"


_probes: weakref.WeakKeyDictionary[Any, Probe] = weakref.WeakKeyDictionary()


def attach(verifier: Any, probe: Probe) -> None:
    """Mark a verifier function as a judge that must be calibrated before it gates."""
    _probes[verifier] = probe


def probe_of(verifier: Any) -> Probe | None:
    return _probes.get(verifier)


# --------------------------------------------------------------------------- the sets


def set_path(name: str, base_dir: Path) -> Path | None:
    """`verifiers/calibration/<name>.jsonl` under the recipe's root, else the cwd."""
    for root in dict.fromkeys([base_dir, Path.cwd()]):
        path = root / "verifiers" / FOLDER / f"{name}.jsonl"
        if path.is_file():
            return path
    return None


_ITEM_KEYS = {
    "rubric": ("data", "keep"),
    "yes_no": ("data", "keep"),
    "pairwise": ("prompt", "chosen", "rejected"),
}


def load_set(path: Path, kind: str) -> list[dict[str, Any]]:
    """The items of a calibration set, each checked for the fields its judge kind needs."""
    items: list[dict[str, Any]] = []
    need = _ITEM_KEYS[kind]
    for line, item in files.jsonl_lines(path, what="a calibration item"):
        missing = [k for k in need if not isinstance(item, dict) or k not in item]
        if missing:
            raise ConfigError(
                f"calibration item without {', '.join(missing)}",
                file=str(path),
                path=f"line {line}",
                expected="{" + ", ".join(f'"{k}": ...' for k in need) + "}",
                found=sorted(item) if isinstance(item, dict) else item,
                fix=f"give every line the fields {', '.join(need)}",
            )
        items.append(item)
    if len(items) < 4:
        raise ConfigError(
            "too few calibration items to measure a judge",
            file=str(path),
            expected="at least 4 items (12-20 is usual), good and bad",
            found=len(items),
            fix="add clearly good and clearly bad examples with the verdict they must get",
        )
    return items


# --------------------------------------------------------------------------- measuring


def _expected(item: Mapping[str, Any], kind: str) -> tuple[bool, float]:
    """(verdict the item must get, the label's value for the correlation)."""
    if kind == "pairwise":
        return True, 1.0
    keep = bool(item["keep"])
    return keep, float(item.get("score", 1.0 if keep else 0.0))


async def measure(
    ctx: Context, judge: str, probe: Probe, items: Sequence[Mapping[str, Any]], model: str | None
) -> Report:
    """Ask the judge about every item (one at a time: a calibration set is small, and a
    local model serves one call at a time anyway) and score its agreement."""
    hits, errors, flips = 0, 0, 0
    scores: list[float] = []
    labels: list[float] = []
    mistakes: list[dict[str, Any]] = []
    verdicts: set[bool] = set()
    for i, item in enumerate(items):
        want, label = _expected(item, probe.kind)
        try:
            got = await probe.ask(ctx, item, model)
        except RECORD_FAILURES as exc:
            errors += 1
            mistakes.append({"item": i, "error": f"{type(exc).__name__}: {exc}"[:200]})
            continue
        flips += got.flipped
        verdicts.add(got.keep)
        if got.keep == want:
            hits += 1
        else:
            mistakes.append({"item": i, "expected": want, "got": got.keep, "score": got.score})
        if got.score is not None:
            scores.append(got.score)
            labels.append(label)
    used = str(model or getattr(ctx.llm, "model", None) or "default")
    constant = probe.kind != "pairwise" and (len(set(scores)) <= 1 or len(set(verdicts)) <= 1)
    return Report(
        judge=judge,
        model=used,
        prompt_hash=prompt_hash(ctx, probe, items),
        items=len(items),
        accuracy=round(hits / len(items), 4),
        min_agreement=probe.min_agreement,
        correlation=_pearson(scores, labels),
        constant=constant,
        errors=errors,
        position_flips=flips if probe.kind == "pairwise" else None,
        mistakes=mistakes[:20],
    )


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return round(statistics.correlation(xs, ys), 4)


def prompt_hash(ctx: Context, probe: Probe, items: Sequence[Mapping[str, Any]]) -> str:
    return content_hash([METHOD, probe.kind, probe.fingerprint(ctx), list(items)])[:16]


# --------------------------------------------------------------------------- the run's gate


def _cache_path() -> Path:
    return files.state_dir() / CACHE_FILE


def _cached(key: str) -> dict[str, Any] | None:
    path = _cache_path()
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    entry = table.get(key) if isinstance(table, dict) else None
    return entry if isinstance(entry, dict) else None


def _remember(key: str, report: Report) -> None:
    path = _cache_path()
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    table[key] = {k: v for k, v in report.to_dict().items() if k not in ("passed", "cached")}
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_json_atomic(path, table)


async def calibrate(
    ctx: Context,
    judge: str,
    probe: Probe,
    model: str | None,
    *,
    fresh: bool = False,
    measure_missing: bool = True,
) -> Report | None:
    """The judge's report for `model` (None: the run's), from the state dir when this
    (judge, model, prompt hash) was measured before, else measured now and kept (or None,
    with `measure_missing=False`)."""
    name = probe.calibration or judge
    path = set_path(name, ctx.base_dir)
    if path is None and probe.calibration is None and probe.default_set:
        name, path = probe.default_set, set_path(probe.default_set, ctx.base_dir)
    if path is None:
        raise ConfigError(
            f"judge {judge!r} has no calibration set, so nobody knows whether it judges well",
            file=f"verifiers/{FOLDER}/{name}.jsonl",
            expected='a JSONL file of labelled examples, e.g. {"data": {...}, "keep": true}'
            if probe.kind != "pairwise"
            else '{"prompt": ..., "chosen": ..., "rejected": ...} per line',
            found="no such file",
            fix=f"write verifiers/{FOLDER}/{name}.jsonl (12-20 clearly good and bad items), "
            "point `calibration:` at an existing set, or set `allow_uncalibrated: true` "
            "on the verifier",
        )
    items = load_set(path, probe.kind)
    used = str(model or getattr(ctx.llm, "model", None) or "default")
    key = "\x1f".join([judge, used, prompt_hash(ctx, probe, items)])
    hit = None if fresh else _cached(key)
    if hit is not None:
        known = {k: v for k, v in hit.items() if k in Report.__dataclass_fields__}
        return Report(**{**known, "min_agreement": probe.min_agreement, "cached": True})
    if not measure_missing:
        return None
    calls = Context(seed=ctx.seed, base_dir=ctx.base_dir, llm=ctx.llm, recipe_name="calibration")
    report = await measure(calls, judge, probe, items, model)
    _remember(key, report)
    return report


def refusal(report: Report, file: str | None = None) -> ConfigError:
    """The error that stops a run whose judge failed its calibration."""
    return ConfigError(
        f"judge {report.judge!r} failed its calibration with {report.model}: it would gate "
        "records it cannot tell apart",
        file=file or f"verifiers/{FOLDER}/{report.judge}.jsonl",
        path="$.verify",
        expected=f"accuracy >= {report.min_agreement:.2f} on the labelled set, scores that vary",
        found=report.summary(),
        fix=f"judge with a stronger model (`model:` on the verifier, or --model), check it "
        f"with `synth judge check {report.judge} --model M`, or set `allow_uncalibrated: "
        "true` on the verifier to gate anyway (the shipped recipes: --set "
        "allow_uncalibrated=true; the manifest records it)",
    )


async def check_chain(chain: Any, ctx: Context) -> list[dict[str, Any]]:
    """Calibrate every judge in the chain before the run lets it gate; what the
    manifest records under `calibration`. Raises the refusal of the first judge that
    fails. A judge with `allow_uncalibrated: true` is not measured (the user has opted
    out; a result measured before, e.g. by `synth judge check`, is still reported)."""
    if ctx.llm is None:
        return []
    out: list[dict[str, Any]] = []
    for named in getattr(chain, "verifiers", ()):
        probe = probe_of(named.fn)
        if probe is None:
            continue
        for model in probe.models:
            allowed = probe.allow_uncalibrated
            try:
                report = await calibrate(ctx, named.name, probe, model, measure_missing=not allowed)
            except ConfigError:
                if not allowed:
                    raise
                report = None
            if report is None:
                used = model or getattr(ctx.llm, "model", None)
                out.append({"judge": named.name, "model": used, "uncalibrated": True})
                continue
            entry = {**report.to_dict(), "allowed_uncalibrated": allowed}
            entry.pop("mistakes", None)
            out.append(entry)
            if not report.passed and not allowed:
                raise refusal(report)
    return out
