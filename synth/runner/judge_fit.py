"""Refusing, at load, a judge set-up that is known to keep nothing.

A pairwise judge on the embedded 135M model (`local/...`) answers "A" whatever the order,
so every pair is position-inconsistent and a run spends its whole budget to keep nothing.
`synth validate` (and `synth run`, which loads the same way) says so before a run starts,
with the fix: score each response alone (`judge: pointwise`), or judge with a real model.
"""

from __future__ import annotations

import re
from typing import Any

from synth.errors import ConfigError

_SETTING = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def check_pairwise(resolved: dict[str, Any], raw: dict[str, Any], file: str) -> None:
    """A ConfigError for a pairwise judgement that a `local/` model would make."""
    model = resolved.get("model")
    steps = resolved.get("steps") or []
    raw_steps: list[Any] = raw["steps"] if isinstance(raw.get("steps"), list) else []
    for i, step in enumerate(steps):
        if step.get("use") != "preference" or step.get("judge", "pairwise") != "pairwise":
            continue
        judge_model = step.get("judge_model") or model
        if _local(judge_model):
            given = raw_steps[i] if i < len(raw_steps) else None
            written = given.get("judge") if isinstance(given, dict) else None
            setting = _SETTING.match(written) if isinstance(written, str) else None
            fix = (
                f"set `{setting.group(1)}: pointwise` in the recipe's settings "
                f"(or --set {setting.group(1)}=pointwise)"
                if setting
                else "set `judge: pointwise` on this step"
            )
            raise _refusal(file, f"$.steps[{i}].judge", str(judge_model), fix)
    preference_step = any(s.get("use") == "preference" for s in steps)
    for i, v in enumerate(resolved.get("verify") or []):
        if not isinstance(v, dict) or v.get("use") != "pairwise":
            continue
        judges_itself = not preference_step or v.get("reuse") is False
        if judges_itself and _local(v.get("model") or model):
            fix = "judge with `use: preference` and `judge: pointwise` before this verifier"
            raise _refusal(file, f"$.verify[{i}]", str(v.get("model") or model), fix)


def _local(model: Any) -> bool:
    return isinstance(model, str) and model.startswith("local/")


def _refusal(file: str, path: str, model: str, fix: str) -> ConfigError:
    return ConfigError(
        f"a pairwise judge on {model} keeps nothing: a small local model prefers the same "
        "position in both orders, so every pair is inconsistent",
        file=file,
        path=path,
        expected="judge_method: pointwise for a local/ model, or a judge model that is not local/",
        found=f"pairwise on {model}",
        fix=f"{fix}; or judge pairwise with a real model (--model openai/gpt-4o-mini)",
    )
