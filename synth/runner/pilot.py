"""`synth run --pilot N`: run N records for real, then say what the full run will take.

A dry run cannot know the pass rate, the real answer lengths or the model's speed; a
pilot measures them on a few real records (in a temporary directory, so the real run
starts clean, though its cached answers are reused) and scales them to `n`: attempts
grow by 1 / pass rate, and calls, tokens, cost and time grow with the attempts. The
figures are per kept record of the pilot, so a recipe that rejects half its candidates
is estimated at twice the calls of one that keeps them all.
"""

from __future__ import annotations

from typing import Any


def extrapolate(manifest: dict[str, Any], n: int) -> dict[str, Any]:
    """Estimates for `n` kept records from a finished pilot run's manifest."""
    counts = manifest.get("counts") or {}
    generated, kept = int(counts.get("generated") or 0), int(counts.get("kept") or 0)
    llm = manifest.get("llm") or {}
    seconds = float((manifest.get("durations") or {}).get("total_s") or 0.0)
    measured: dict[str, Any] = {
        "generated": generated,
        "kept": kept,
        "rejected_by_reason": dict(counts.get("rejected_by_reason") or {}),
        "calls": int(llm.get("calls") or 0),
        "input_tokens": int(llm.get("input_tokens") or 0),
        "output_tokens": int(llm.get("output_tokens") or 0),
        "cost_usd": float(llm.get("cost_usd") or 0.0),
        "cache_hits": int(llm.get("cache_hits") or 0),
        "seconds": round(seconds, 3),
    }
    out: dict[str, Any] = {
        "n": n,
        "pilot": measured,
        "pass_rate": round(kept / generated, 4) if generated else None,
    }
    if not kept:
        out["estimate"] = None
        return out
    scale = n / kept
    est = {
        k: measured[k] * scale
        for k in ("generated", "calls", "input_tokens", "output_tokens", "cost_usd", "seconds")
    }
    out["estimate"] = {
        "attempts": round(est["generated"]),
        "calls": round(est["calls"]),
        "input_tokens": round(est["input_tokens"]),
        "output_tokens": round(est["output_tokens"]),
        "cost_usd": round(est["cost_usd"], 6),
        "seconds": round(est["seconds"], 1),
    }
    return out


def format_pilot(p: dict[str, Any], budget: Any = None) -> str:
    m, est = p["pilot"], p["estimate"]
    why = ", ".join(f"{c} {r}" for r, c in sorted(m["rejected_by_reason"].items()))
    lines = [
        f"pilot: {m['kept']} of {m['generated']} records passed"
        + (f" ({why})" if why else "")
        + f" in {m['seconds']:.1f} s; {m['calls']} LLM calls"
        + (f" ({m['cache_hits']} from the cache)" if m["cache_hits"] else "")
        + f", {m['input_tokens'] + m['output_tokens']:,} tokens, ${m['cost_usd']:.4f}"
    ]
    if est is None:
        lines.append(
            f"  no record passed, so nothing can be extrapolated to n={p['n']}: look at the "
            "rejection reasons above (or run `synth run --dry-run` for the prompts)"
        )
        return "\n".join(lines)
    lines.append(
        f"  estimate for n={p['n']:,} at a pass rate of {100 * p['pass_rate']:.0f}%: "
        f"{est['attempts']:,} attempts, {est['calls']:,} calls, "
        f"{est['input_tokens']:,} input + {est['output_tokens']:,} output tokens, "
        f"${est['cost_usd']:.4f}, {_duration(est['seconds'])}"
    )
    if m["cache_hits"]:
        lines.append("  cached answers cost nothing and are fast: cost and time may be low")
    checks = [
        ("max_attempts", est["attempts"]),
        ("max_cost_usd", est["cost_usd"]),
        ("max_tokens", est["input_tokens"] + est["output_tokens"]),
        ("max_seconds", est["seconds"]),
    ]
    for name, value in checks:
        cap = getattr(budget, name, None)
        if cap is not None and value > cap:
            lines.append(f"  the budget {name}={cap} would stop the run before n")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
