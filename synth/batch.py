"""Nightly batches: top up datasets every night without redoing or repeating work.

`synth batch batches/nightly.yaml --date 2024-05-02` runs each entry of the batch file
into `out/<batch>/<date>/<entry>/` through the engine, then monitors, mixes and reports it.

- **Idempotent**: each entry is an ordinary engine run, so re-running a night resumes what
  a crash cut short and does nothing for what finished. The monitor and the mixer do not
  run again for a finished entry whose outputs exist.
- **Incremental**: each night gets its own seed (from the batch seed, the date and the
  entry). The `seen_before` verifier, put first in the chain, rejects records whose id or
  normalized content an earlier night already produced.
- **Accountable**: `batch.json` holds each entry's status, counts, cost and monitor
  verdict, and a diff against the previous night. `report.html` shows it all. The exit
  status is non-zero when an entry failed, stopped short of `n`, or the collapse monitor
  said `fail`, so a scheduler can alert.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.context import derive_seed
from synth.errors import ConfigError, SynthError
from synth.files import write_json_atomic
from synth.report.run import DATE_DIR, load_json

log = logging.getLogger("synth.batch")
BATCH_FILE, HISTORY = "batch.json", ".history"


@dataclass(frozen=True, kw_only=True)
class Entry:
    name: str
    recipe: str
    n: int
    seed: int | None = None
    model: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    monitor: dict[str, Any] | None = None
    mix: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Batch:
    name: str
    file: Path
    root: Path  # the project folder: recipes/, templates/ ... and relative paths
    seed: int
    out: Path
    model: str | None  # default for entries whose recipe calls a model
    dedup_history: bool
    entries: tuple[Entry, ...]

    def night_dir(self, date: str) -> Path:
        return self.out / self.name / date

    def night_seed(self, date: str, entry: Entry) -> int:
        """A new seed each night, stable for a night (so a re-run resumes)."""
        if entry.seed is not None:
            return entry.seed
        return derive_seed(self.seed, "batch", date, entry.name) % 2**31


def load_batch(path: str | Path, *, out: str | Path | None = None) -> Batch:
    """Read and validate a batch file (errors name the file and JSON path)."""
    from synth.content import load_yaml, resolve
    from synth.schema import check, packaged

    path = Path(path)
    raw = load_yaml(path)
    check(raw, packaged("batch.json"), file=str(path), what="batch")
    root = path.resolve().parent
    root = root.parent if root.name == "batches" else root
    defaults = {k: raw.get(k) for k in ("monitor", "mix")}
    entries, seen = [], set()
    for i, e in enumerate(raw["recipes"]):
        # An unknown recipe is a bad batch file (exit 2), not a failed night (exit 1).
        resolve("recipes", e["recipe"], root, file=str(path), path=f"$.recipes[{i}].recipe")
        name = e.get("name") or Path(e["recipe"]).stem
        if name in seen:
            raise ConfigError(
                f"two entries write to {name!r}",
                file=str(path),
                path=f"$.recipes[{i}].name",
                expected="a unique name per entry",
                found=name,
                fix="give one of them `name: <other-folder>`",
            )
        seen.add(name)
        sections = {k: e.get(k, defaults[k]) for k in ("monitor", "mix")}
        entries.append(
            Entry(
                name=name,
                recipe=e["recipe"],
                n=e["n"],
                seed=e.get("seed"),
                model=e.get("model"),
                settings=dict(e.get("settings") or {}),
                budget=dict(e.get("budget") or {}),
                **{k: (v or None) for k, v in sections.items()},
            )
        )
    return Batch(
        name=raw.get("name") or path.stem,
        file=path,
        root=root,
        seed=int(raw.get("seed", 0)),
        out=Path(out or raw.get("out") or "out"),
        model=raw.get("model"),
        dedup_history=bool(raw.get("dedup_history", True)),
        entries=tuple(entries),
    )


async def run_batch(
    batch: Batch, date: str, *, run_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one night; returns (and writes) the batch manifest."""
    check_date(date)
    night = batch.night_dir(date)
    night.mkdir(parents=True, exist_ok=True)
    lock = _lock(night)
    try:
        previous = load_json(night / BATCH_FILE)
        started = time.time()
        entries: dict[str, Any] = {}
        for entry in batch.entries:
            entries[entry.name] = await _run_entry(batch, entry, date, run_options or {})
            _write(night, _manifest(batch, date, entries, previous, started, final=False))
        manifest = _manifest(batch, date, entries, previous, started, final=True)
        _write(night, manifest)
        await asyncio.to_thread(_batch_report, night)
        return manifest
    finally:
        os.close(lock)


async def _run_entry(
    batch: Batch, entry: Entry, date: str, options: dict[str, Any]
) -> dict[str, Any]:
    from synth import api

    run_dir = batch.night_dir(date) / entry.name
    seed = batch.night_seed(date, entry)
    info: dict[str, Any] = {"recipe": entry.recipe, "dir": str(run_dir), "n": entry.n, "seed": seed}
    t0 = time.monotonic()
    try:
        recipe = await asyncio.to_thread(_recipe_for, batch, entry, date)
        result = await api.run(recipe, n=entry.n, seed=seed, out=run_dir, **entry.budget, **options)
        info["this_run"] = (
            "nothing to do" if result.already_done else ("resumed" if result.resumed else "ran")
        )
        info.update(_counts(result.manifest))
        info["status"] = "done" if result.stop_reason == "done" else "incomplete"
        if batch.dedup_history:
            history = batch.out / batch.name / HISTORY / entry.name / f"{date}.npy"
            from synth.verifiers.seen_before import write_digests

            await asyncio.to_thread(write_digests, run_dir / "data.jsonl", history)
        redo = not result.already_done
        if entry.monitor:
            info["monitor"] = await asyncio.to_thread(_monitor, batch, entry, run_dir, seed, redo)
        refused = (info.get("monitor") or {}).get("status") == "fail"
        if entry.mix and refused:
            info["mix"] = {"skipped": "the collapse monitor failed this night's records"}
        elif entry.mix:
            info["mix"] = await asyncio.to_thread(_mix, batch, entry, run_dir, seed, redo)
        await asyncio.to_thread(_run_report, run_dir)
    except SynthError as exc:
        info.update(status="failed", error=str(exc))
        log.error("batch %s %s: %s", batch.name, entry.name, exc)
    except Exception as exc:  # one broken entry must not stop the night
        log.exception("batch %s %s failed", batch.name, entry.name)
        info.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    info["seconds"] = round(time.monotonic() - t0, 2)
    return info


def _recipe_for(batch: Batch, entry: Entry, date: str) -> Any:
    """The entry's recipe with `seen_before` first in its chain."""
    from synth.content import load_yaml, resolve
    from synth.runner.recipe import from_dict

    file = resolve("recipes", entry.recipe, batch.root, file=str(batch.file), path="recipe")
    raw = load_yaml(file)
    if batch.dedup_history and isinstance(raw, dict):
        # Relative to the run dir (out/<batch>/<date>/<entry>/): the recipe hash stays the
        # same however --out is spelled, so a re-run from elsewhere still resumes.
        history = Path("..", "..", HISTORY, entry.name)
        gate = {"use": "seen_before", "history": str(history), "before": date}
        raw = {**raw, "verify": [gate, *(raw.get("verify") or [])]}
    recipe = from_dict(raw, file=file, settings=entry.settings, model=entry.model)
    if entry.model is None and batch.model and recipe.needs_llm:
        recipe = from_dict(raw, file=file, settings=entry.settings, model=batch.model)
    return recipe


def _monitor(batch: Batch, entry: Entry, run_dir: Path, seed: int, redo: bool) -> dict[str, Any]:
    report_file = run_dir / "monitor_report.json"
    report = load_json(report_file)
    if redo or not report:
        from synth.curate.monitor import monitor_from_config

        cfg = {"series": f"{batch.name}/{entry.name}", **(entry.monitor or {})}
        report = monitor_from_config(
            cfg, run_dir, base_dir=batch.root, seed=seed, root=batch.out / batch.name / ".monitor"
        )
    return {"status": report.get("status", "?"), "reasons": report.get("reasons", [])}


def _mix(batch: Batch, entry: Entry, run_dir: Path, seed: int, redo: bool) -> dict[str, Any]:
    out = run_dir / "mixed"
    report = load_json(out / "mix_report.json")
    if redo or not report:
        from synth.curate.mixer import mix_from_config

        report = mix_from_config(dict(entry.mix or {}), run_dir, base_dir=batch.root, seed=seed)
    counts = report.get("counts") or {}
    return {
        "out": str(out),
        "real": (counts.get("real") or {}).get("selected", 0),
        "synthetic": (counts.get("synthetic") or {}).get("selected", 0),
        "real_fraction": report.get("real_fraction"),
        "warnings": report.get("warnings", []),
    }


def _run_report(run_dir: Path) -> None:
    from synth.report.run import write_report

    report, manifest = run_dir / "report.html", run_dir / "manifest.json"
    newest = max(
        (p.stat().st_mtime for p in (manifest, run_dir / "monitor_report.json") if p.exists()),
        default=0.0,
    )
    if not report.exists() or report.stat().st_mtime < newest:
        write_report(run_dir)


def _batch_report(night: Path) -> None:
    from synth.report.batch import write_batch_report

    write_batch_report(night)


def _counts(manifest: dict[str, Any]) -> dict[str, Any]:
    counts, llm = manifest.get("counts") or {}, manifest.get("llm") or {}
    by_reason = dict(counts.get("rejected_by_reason") or {})
    return {
        "kept": int(counts.get("kept", 0)),
        "generated": int(counts.get("generated", 0)),
        "rejected": int(counts.get("rejected", 0)),
        "rejected_by_reason": by_reason,
        "seen_before": int(by_reason.get("seen_before", 0)),
        "stop_reason": manifest.get("stop_reason"),
        "cost_usd": float(llm.get("cost_usd") or 0.0),
        "tokens": int(llm.get("input_tokens") or 0) + int(llm.get("output_tokens") or 0),
        "llm_calls": int(llm.get("calls") or 0),
        "cache_hits": int(llm.get("cache_hits") or 0),
        "duration_s": float((manifest.get("durations") or {}).get("total_s", 0.0)),
    }


def _manifest(
    batch: Batch,
    date: str,
    entries: dict[str, Any],
    previous: dict[str, Any],
    started: float,
    *,
    final: bool,
) -> dict[str, Any]:
    failed = sorted(k for k, e in entries.items() if e.get("status") != "done")
    monitor_failed = sorted(
        k for k, e in entries.items() if (e.get("monitor") or {}).get("status") == "fail"
    )
    status = "running" if not final else ("failed" if failed or monitor_failed else "ok")
    totals = {
        k: sum(e.get(k, 0) for e in entries.values())
        for k in ("kept", "generated", "rejected", "seen_before", "tokens", "llm_calls")
    }
    totals["cost_usd"] = round(sum(e.get("cost_usd", 0.0) for e in entries.values()), 8)
    return {
        "batch": batch.name,
        "date": date,
        "file": str(batch.file),
        "seed": batch.seed,
        "status": status,
        "failed": failed,
        "monitor_failed": monitor_failed,
        "invocations": int(previous.get("invocations", 0)) + 1,
        "started_at": _iso(started),
        "finished_at": _iso(time.time()) if final else None,
        "totals": totals,
        "recipes": entries,
        "diff": diff_previous(batch, date, entries),
    }


def diff_previous(batch: Batch, date: str, entries: dict[str, Any]) -> dict[str, Any]:
    """Tonight against the latest earlier night: counts, cost, diversity per entry."""
    base = batch.out / batch.name
    nights = sorted(p.name for p in base.iterdir() if DATE_DIR.match(p.name) and p.name < date)
    prev_name = next((n for n in reversed(nights) if (base / n / BATCH_FILE).is_file()), None)
    if prev_name is None:
        return {"previous": None}
    prev = load_json(base / prev_name / BATCH_FILE).get("recipes") or {}
    out: dict[str, Any] = {}
    for name in sorted(set(entries) | set(prev)):
        now, before = entries.get(name) or {}, prev.get(name) or {}
        row: dict[str, Any] = {}
        for key in ("kept", "rejected", "seen_before", "cost_usd", "tokens"):
            a, b = before.get(key), now.get(key)
            if a is not None or b is not None:
                row[key] = {"previous": a, "now": b, "change": _delta(a, b)}
        div_prev = load_json(base / prev_name / name / "report.json").get("diversity") or {}
        div_now = load_json(base / date / name / "report.json").get("diversity") or {}
        for key in sorted(set(div_prev) & set(div_now)):
            row[f"diversity.{key}"] = {
                "previous": div_prev[key],
                "now": div_now[key],
                "change": _delta(div_prev[key], div_now[key]),
            }
        out[name] = row
    return {
        "previous": prev_name,
        "added": sorted(set(entries) - set(prev)),
        "removed": sorted(set(prev) - set(entries)),
        "recipes": out,
    }


def check_date(date: str) -> None:
    """A night is a real calendar date, YYYY-MM-DD (it names a folder)."""
    try:
        ok = bool(DATE_DIR.match(date)) and dt.date.fromisoformat(date).isoformat() == date
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            "not a calendar date",
            path="--date",
            expected="a date as YYYY-MM-DD, e.g. 2024-05-02",
            found=date,
            fix="check month (01-12) and day; leave --date out for today",
        )


def exit_status(manifest: dict[str, Any]) -> int:
    """0 when every entry reached n and no monitor failed; 1 otherwise (alert)."""
    return 0 if manifest.get("status") == "ok" else 1


def today() -> str:
    return dt.date.today().isoformat()


def _delta(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return round(b - a, 6)
    return None


def _write(night: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(night / BATCH_FILE, manifest)


def _lock(night: Path) -> int:
    fd = os.open(night / ".batch.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"another `synth batch` is running this night ({night})",
            expected="one batch process per night",
            fix="wait for it to finish; running the same command again afterwards is safe",
        ) from None
    return fd


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")
