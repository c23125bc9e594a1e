"""Verdicts and verifier chains: first failure stops, every verdict lands in lineage."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from synth.context import Context
from synth.records import Record


@dataclass(frozen=True, slots=True)
class Verdict:
    """A verifier's answer. `reason` is short snake_case: it becomes a counter
    (`rejected_<reason>`) and the reason in `rejects.jsonl`."""

    ok: bool
    score: float | None = None
    reason: str = ""
    detail: str = ""
    info: dict[str, Any] | None = None  # structured lineage (e.g. per-test results), JSON


Verifier = Callable[[Record, Context], Awaitable[Verdict]]


@dataclass(frozen=True, slots=True)
class Named:
    """A verifier with the name it reports under."""

    name: str
    fn: Verifier


@dataclass(frozen=True, slots=True)
class Chain:
    verifiers: Sequence[Named]

    async def check(self, record: Record, ctx: Context) -> tuple[Record, Verdict]:
        """Run verifiers in order, stop at the first failure, record every verdict.

        Counts `kept`, `rejected` and `rejected_<reason>` in ctx.stats. A verifier that
        raises is a bug in that verifier, reported as a rejection with reason `error`
        rather than a crash of the whole run."""
        verdicts: list[dict[str, Any]] = list(record.meta.get("verdicts", []))
        final = Verdict(True, reason="")
        failed = record.meta.get("error")
        if isinstance(failed, dict):  # a step could not make this record (its model never
            # answered usably): rejected with the step's reason, counted like any reject
            reason = slug(str(failed.get("reason") or "step_failed"))
            detail = str(failed.get("detail") or "")
            entry = {"verifier": str(failed.get("step") or "step"), "ok": False, "score": None}
            verdicts.append({**entry, "reason": reason, **({"detail": detail} if detail else {})})
            final = Verdict(False, None, reason, detail)
        for v in self.verifiers if final.ok else ():
            try:
                verdict = await v.fn(record, ctx)
            except Exception as exc:  # noqa: BLE001  (a verifier must never crash the run)
                verdict = Verdict(False, reason="error", detail=f"{type(exc).__name__}: {exc}")
            verdicts.append(
                {
                    "verifier": v.name,
                    "ok": verdict.ok,
                    "score": verdict.score,
                    "reason": verdict.reason,
                    **({"detail": verdict.detail} if verdict.detail else {}),
                    **({"info": verdict.info} if verdict.info else {}),
                }
            )
            if not verdict.ok:
                reason = slug(verdict.reason or v.name)
                final = Verdict(False, verdict.score, reason, verdict.detail)
                break
        if final.ok:
            ctx.stats["kept"] += 1
        else:
            ctx.stats["rejected"] += 1
            ctx.stats[f"rejected_{final.reason}"] += 1
        meta: dict[str, Any] = {"verdicts": verdicts}
        if not final.ok:
            meta["reject_reason"] = final.reason
        return record.evolve(**meta), final


def slug(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "rejected"
