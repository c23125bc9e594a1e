"""The dataset card (README.md) of a published folder, built from the runs' manifests.

The YAML header is what the Hub and `datasets` read: `configs` maps splits to shard files,
`dataset_info.features` declares the schema (written from the same pyarrow schema the
shards use, so the two cannot disagree), plus license, size category and tags. The body
is what a person deciding whether to train on it needs: where every row came from (recipe
and hash, models, seed), what was thrown away and why, how real data was mixed in and
decontaminated, and how to read the lineage column. Only chosen manifest fields are
copied, and the text is redacted against the environment's secrets, so a token never
lands in a card.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from synth.files import jsonl_lines
from synth.redaction import redact, secret_values

if TYPE_CHECKING:
    import pyarrow as pa

    from synth.curate.publish import PublishConfig, Published, Source

LINEAGE = {
    "id": "stable hash of (recipe hash, seed, index, parent ids): same run, same id",
    "source": "`synthetic` or `real` (real rows come from the mix's real data)",
    "generator / template": "the source step and template that produced the record",
    "index": "the record's position in its run (its RNG is seeded from seed + index)",
    "parents": "ids of the records it was derived from (perturbed, paraphrased, ...)",
    "llm_calls": "every model call: model, prompt-template hash, cached, tokens, cost",
    "verdicts": "every verifier's verdict: verifier, ok, score, reason",
    "provenance": "for real rows: the file, format and row they were read from",
    "generation": "for mixed rows: which synthetic generation (or real) it belongs to",
}
_SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]


def size_category(n: int) -> str:
    return next((label for limit, label in _SIZES if n < limit), "n>1T")


def features(schema: pa.Schema) -> list[dict[str, Any]]:
    """`dataset_info.features` in the Hub's YAML form, from the pyarrow schema."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


def _feature(t: pa.DataType) -> dict[str, Any]:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return {
            "struct": [
                {"name": t.field(i).name, **_feature(t.field(i).type)} for i in range(t.num_fields)
            ]
        }
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _feature(t.value_type)
        return {"list": inner["struct"] if "struct" in inner else inner.get("dtype", inner)}
    names = {
        pa.string(): "string",
        pa.large_string(): "large_string",
        pa.bool_(): "bool",
        pa.float64(): "float64",
        pa.float32(): "float32",
        pa.int64(): "int64",
        pa.int32(): "int32",
        pa.null(): "null",
    }
    return {"dtype": names.get(t, str(t))}


def license_of(sources: list[Source], config: PublishConfig) -> str:
    if config.license:
        return config.license
    for s in sources:
        recipe = s.json("manifest.json").get("recipe") or {}
        file = Path(str(recipe.get("file"))) if isinstance(recipe, dict) else None
        if file is not None and not file.is_absolute() and not file.is_file():
            file = Path(s.path, "..", file)  # recorded relative to where the run started
        if file is not None and file.is_file():
            try:
                loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (yaml.YAMLError, OSError, UnicodeDecodeError):
                continue
            if isinstance(loaded, dict) and isinstance(loaded.get("license"), str):
                return str(loaded["license"])
    return "other"


def dataset_card(
    sources: list[Source], result: Published, config: PublishConfig, *, download_size: int = 0
) -> str:
    total = sum(result.splits.values())
    header = {
        "license": license_of(sources, config),
        "size_categories": [size_category(total)],
        "tags": ["synthetic", "synth"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in result.splits],
            }
        ],
        "dataset_info": {
            "features": features(result.schema),
            "splits": [
                {"name": s, "num_bytes": result.nbytes[s], "num_examples": n}
                for s, n in result.splits.items()
            ],
            "download_size": download_size,
            "dataset_size": sum(result.nbytes.values()),
        },
    }
    if config.pretty_name:
        header["pretty_name"] = config.pretty_name
    body = [_intro(result, config)]
    for s in sources:
        body.append(_source(s))
    body.append(_lineage(config))
    text = "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n"
    text += "\n\n".join(body) + "\n"
    return redact(text, secret_values())


def _intro(result: Published, config: PublishConfig) -> str:
    from synth import __version__

    splits = ", ".join(f"`{s}` {n}" for s, n in result.splits.items())
    lines = [
        f"# {config.pretty_name or 'Synthetic dataset'}",
        "",
        f"Generated with synth {__version__}. Rows: {splits}; "
        f"format `{config.fmt}`; {result.duplicates} exact duplicate(s) dropped.",
    ]
    if "test" in result.splits:
        lines.append(
            f"The test split is {config.test_fraction:g} of the distinct rows, chosen by a "
            f"hash salted with seed {result.seed}; no row's text is in both splits."
        )
    lines += [
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("<this folder or OWNER/NAME>")',
        "```",
    ]
    return "\n".join(lines)


def _source(s: Source) -> str:
    m, mix = s.json("manifest.json"), s.json("mix_report.json")
    out = [f"## Source: `{s.name}`", ""]
    recipe = m.get("recipe") if isinstance(m.get("recipe"), dict) else {}
    if recipe:
        out.append(f"- recipe: `{recipe.get('name')}` (hash `{recipe.get('hash')}`)")
    models = sorted(
        {
            str(x)
            for x in (
                m.get("model"),
                (m.get("llm") or {}).get("model") if isinstance(m.get("llm"), dict) else None,
            )
            if x
        }
    )
    if m:
        out.append(f"- models: {', '.join(f'`{x}`' for x in models) or 'none (no LLM)'}")
        out.append(f"- seed: {m.get('seed')}; stop reason: {m.get('stop_reason')}")
        out.append(f"- synth version: {m.get('synth_version')}")
        c = m.get("counts") or {}
        out.append(
            f"- generated {c.get('generated', 0)}, kept {c.get('kept', 0)}, "
            f"rejected {c.get('rejected', 0)}"
        )
        reasons = c.get("rejected_by_reason") or {}
        if reasons:
            out += ["", "| rejection reason | records |", "|---|---|"]
            out += [f"| {r} | {n} |" for r, n in sorted(reasons.items(), key=lambda x: -x[1])]
    rates = pass_rates(s)
    if rates:
        out += ["", "| verifier | checked | passed | pass rate |", "|---|---|---|---|"]
        out += [f"| {v} | {n} | {ok} | {ok / n:.1%} |" for v, (n, ok) in rates.items()]
    if mix:
        out += _mix(mix)
    return "\n".join(out)


def pass_rates(s: Source) -> dict[str, tuple[int, int]]:
    """verifier -> (records checked, passed), from kept rows' and rejects' verdicts."""
    checked: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    files = list(s.files)
    if s.path.is_dir() and (s.path / "rejects.jsonl").is_file():
        files.append(s.path / "rejects.jsonl")
    for f in files:
        for _n, obj in jsonl_lines(f, what="one JSON object per line"):
            meta = obj.get("meta") if isinstance(obj, dict) else None
            for v in (meta or {}).get("verdicts") or []:
                if isinstance(v, dict) and v.get("verifier"):
                    checked[v["verifier"]] += 1
                    passed[v["verifier"]] += bool(v.get("ok"))
    return {v: (checked[v], passed[v]) for v in checked}


def _mix(mix: dict[str, Any]) -> list[str]:
    counts = mix.get("counts") or {}
    real, syn = counts.get("real") or {}, counts.get("synthetic") or {}
    out = [
        "",
        "### Mix",
        "",
        f"- real fraction (tokens): {float(mix.get('real_fraction') or 0):.3f}",
        f"- real records selected: {real.get('selected')}, tokens {real.get('tokens')}",
        f"- synthetic records selected: {syn.get('selected')}, tokens {syn.get('tokens')}",
    ]
    inputs = mix.get("inputs") or {}
    for r in inputs.get("real") or []:
        out.append(f"- real data: `{r.get('path')}` (sha256 `{str(r.get('sha256'))[:16]}`)")
    for r in inputs.get("synthetic") or []:
        if isinstance(r, dict):
            out.append(f"- synthetic input: `{r.get('path')}`")
    removed = mix.get("removed") or {}
    for src, c in removed.items():
        if c:
            out.append(f"- removed from {src}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    decon = mix.get("decontam")
    if isinstance(decon, dict):
        evals = [e.get("path") for e in inputs.get("eval_sets") or [] if isinstance(e, dict)]
        out += [
            "",
            "### Decontamination",
            "",
            f"- eval sets: {', '.join(f'`{e}`' for e in evals) or 'none'}",
            f"- hits: {decon.get('hits') or {}}; actions: {decon.get('actions') or {}}",
        ]
    return out


def _lineage(config: PublishConfig) -> str:
    if not config.meta:
        return "## Lineage\n\nPublished without the `meta` column (`--no-meta`)."
    rows = "\n".join(f"| `{k}` | {v} |" for k, v in LINEAGE.items())
    return (
        "## Lineage\n\nEach row's `meta` column is a JSON string (its shape varies by step; "
        "the column's type does not). Fields, where present:\n\n| field | meaning |\n|---|---|\n"
        + rows
    )
