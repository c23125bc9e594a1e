"""Run folders as `synth run` writes them (data.jsonl, rejects.jsonl, manifest.json),
written directly so publish/export tests need no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_run(
    path: Path,
    pairs: list[tuple[str, str]],
    *,
    recipe: str = "qa",
    seed: int = 7,
    rejected: int = 2,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A finished run of instruction/response records, with verdicts and rejects."""
    path.mkdir(parents=True, exist_ok=True)
    ok = [
        {"verifier": "length", "ok": True, "score": 1.0, "reason": ""},
        {"verifier": "judge", "ok": True, "score": 0.9, "reason": ""},
    ]
    with open(path / "data.jsonl", "w", encoding="utf-8") as fh:
        for i, (q, a) in enumerate(pairs):
            rec = {
                "id": f"{recipe}-{i:04d}",
                "data": {"instruction": q, "response": a, **(extra or {})},
                "meta": {
                    "recipe": recipe,
                    "index": i,
                    "seed": seed,
                    "source": "synthetic",
                    "verdicts": ok,
                    "llm_calls": [{"model": "fake/model", "tokens": 12}],
                },
            }
            fh.write(json.dumps(rec) + "\n")
    bad = [{"verifier": "length", "ok": False, "score": 0.0, "reason": "too_short"}]
    with open(path / "rejects.jsonl", "w", encoding="utf-8") as fh:
        for i in range(rejected):
            rec = {
                "id": f"rej-{i}",
                "data": {"instruction": "q", "response": ""},
                "meta": {"verdicts": bad, "reject_reason": "too_short"},
            }
            fh.write(json.dumps(rec) + "\n")
    manifest = {
        "recipe": {"name": recipe, "hash": "f" * 64, "file": str(path / "recipe.yaml")},
        "seed": seed,
        "model": "fake/model",
        "status": "finished",
        "stop_reason": "done",
        "synth_version": "0.1.0",
        "counts": {
            "generated": len(pairs) + rejected,
            "kept": len(pairs),
            "rejected": rejected,
            "rejected_by_reason": {"too_short": rejected} if rejected else {},
        },
    }
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def qa_pairs(n: int, start: int = 0) -> list[tuple[str, str]]:
    return [
        (f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.") for i in range(start, start + n)
    ]
