"""Per-field profiles for `report.html`: what each field of the kept data looks like.

A reader's first question about synthetic data is "what did the model write?", so the
fields a recipe's model steps fill come first, then the fields the source made. Each
profile comes from `synth.runner.fieldstats` (types, null rate, distinct values, top
values) plus histograms of numbers and lengths drawn as plain HTML bars: a report with
thirty fields must not spend seconds in matplotlib, and bars need no font or script.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.runner.fieldstats import LOW_CARDINALITY, FieldStats, Profile, flatten

VALUES_PER_FIELD = 20_000  # numbers and lengths kept per field for the histograms
BINS = 24
EXAMPLES = 3  # values of each generated field shown on its card
# Recipe step options that name the field a step writes, and the default when omitted.
_OUTPUT_KEYS = ("output_field", "field", "fields", "text_field")
_DEFAULT_OUTPUT = {"prompt": "completion", "instruct": "instruction"}


@dataclass
class FieldProfiler:
    """Accumulates a `Profile` and the raw numbers/lengths its histograms need."""

    profile: Profile = field(default_factory=lambda: Profile(cap=50_000))
    numbers: dict[str, list[float]] = field(default_factory=dict)
    lengths: dict[str, list[int]] = field(default_factory=dict)

    def add(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        self.profile.add(data)
        for name, value in flatten(data):
            kind = type(value)
            if kind is int or kind is float:
                bucket: list[Any] = self.numbers.setdefault(name, [])
                if len(bucket) < VALUES_PER_FIELD:
                    bucket.append(value)
            elif kind is str or kind is list:
                bucket = self.lengths.setdefault(name, [])
                if len(bucket) < VALUES_PER_FIELD:
                    bucket.append(len(value))


def generated_fields(manifest: Mapping[str, Any], run_dir: Path) -> list[str]:
    """Fields the recipe's non-source steps write (an LLM's answer, a paraphrase, code),
    read from the recipe file the manifest names. Empty when the file is gone."""
    recipe = manifest.get("recipe") if isinstance(manifest.get("recipe"), Mapping) else {}
    file = (recipe or {}).get("file")
    if not file:
        return []
    text = None
    for path in (Path(file), run_dir / file, run_dir.parent / file):
        try:
            text = path.read_text(encoding="utf-8")
            break
        except (OSError, ValueError):
            continue
    if text is None:
        return []
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    steps = doc.get("steps") if isinstance(doc, dict) else None
    out: list[str] = []
    for step in (steps or [])[1:]:  # the first step is the source
        if not isinstance(step, dict):
            continue
        named = [step[k] for k in _OUTPUT_KEYS if k in step]
        if not named and step.get("use") in _DEFAULT_OUTPUT:
            named = [_DEFAULT_OUTPUT[str(step["use"])]]
        for value in named:
            for name in value if isinstance(value, list) else [value]:
                if isinstance(name, str) and name not in out:
                    out.append(name)
    return out


def field_profiles(
    profiler: FieldProfiler, generated: Iterable[str], sample: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """One row per field, generated fields first, ready for the template; a generated
    field also shows a few of its values from `sample` (records), since what the model
    wrote is what a reader came to see."""
    prof = profiler.profile
    gen = [g for g in generated if g in prof.fields]
    order = gen + sorted(n for n in prof.fields if n not in gen)
    shown: dict[str, list[str]] = {g: [] for g in gen}
    for obj in sample:
        data = obj.get("data")
        for name, value in flatten(data) if isinstance(data, dict) else ():
            if name in shown and len(shown[name]) < EXAMPLES and value not in (None, ""):
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                shown[name].append(text[:400] + ("…" if len(text) > 400 else ""))
    rows = []
    for name in order:
        stats = prof.fields[name]
        s = stats.summary(prof.records)
        rows.append(
            {
                "name": name,
                "generated": name in gen,
                "type": s["type"],
                "null_rate": s["null_rate"],
                "distinct": s["distinct"],
                "number": s.get("number"),
                "length": s.get("length"),
                "top": _top(stats),
                "examples": shown.get(name, []),
                "number_bins": bins(profiler.numbers.get(name, [])),
                "length_bins": bins(profiler.lengths.get(name, [])),
            }
        )
    return rows


def _top(stats: FieldStats) -> list[dict[str, Any]]:
    """Every value of a low-cardinality field with its share (label balance)."""
    if stats.capped or len(stats.distinct) > LOW_CARDINALITY:
        return []
    total = sum(stats.top.values()) or 1
    out = []
    for (kind, value), count in stats.top.most_common(LOW_CARDINALITY):
        shown = value if kind in (str, int, float, bool) else json.loads(value)
        out.append({"value": shown, "count": count, "pct": round(100 * count / total, 1)})
    return out


def bins(values: list[float] | list[int], n: int = BINS) -> list[dict[str, Any]]:
    """Equal-width bins with a height in percent of the tallest; [] for a constant field."""
    if len(values) < 2:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return []
    width = (hi - lo) / n
    counts = [0] * n
    for v in values:
        counts[min(n - 1, int((v - lo) / width))] += 1
    top = max(counts)
    return [
        {
            "lo": _round(lo + i * width),
            "hi": _round(lo + (i + 1) * width),
            "count": c,
            "h": round(100 * c / top, 1),
        }
        for i, c in enumerate(counts)
    ]


def _round(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 3)
