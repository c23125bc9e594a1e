"""How text steps and judges call the LLM seam and record each call in lineage.

`ctx.llm.complete(messages, model=..., schema=..., **params)` is the whole interface;
this module adds the two things every caller needs: the prompt template's hash passed
along (so lineage and the cache see which prompt produced an answer), and the shared
handling of a call that failed. A `Completion` (`synth.llm.types`) carries its own
`.parsed` JSON and `.lineage()`."""

from __future__ import annotations

import re
from typing import Any

from synth.context import Context
from synth.errors import ConfigError, LLMResponseError
from synth.llm.prompts import Prompt
from synth.llm.types import Completion

# Per-record failures a step survives: the record is rejected with the reason, the run
# goes on. Deliberately absent: BudgetExceeded (it stops the run cleanly) and transient
# errors, which reach a step only when every retry failed (LLMUnavailable): the endpoint is
# down, not the record bad, so the run stops and a resume makes the record after all.
RECORD_FAILURES = (LLMResponseError,)


async def complete(
    ctx: Context,
    messages: list[dict[str, str]],
    *,
    model: str | None = None,
    schema: dict[str, Any] | None = None,
    prompt: Prompt | None = None,
    **params: Any,
) -> Completion:
    """One model call through the run's client; params are sampling parameters
    (temperature, max_tokens, n_index, ...) passed through unchanged."""
    if ctx.llm is None:
        raise ConfigError(
            "this step needs a model but the run has no LLM client",
            expected="a recipe `model:` (or `--model`), e.g. local/smollm2",
            fix="add `model: local/smollm2` to the recipe or pass --model",
        )
    if prompt is not None:
        params.setdefault("template_hash", prompt.hash)
    return await ctx.llm.complete(messages, model=model, schema=schema, **params)


def failure_reason(exc: BaseException) -> str:
    # Only unusable answers reach a step as per-record failures (`RECORD_FAILURES`).
    return "llm_response_error" if isinstance(exc, LLMResponseError) else "llm_error"


_PREAMBLE = re.compile(
    r"^\s*(?:sure[,!.]?\s*)?(?:here(?:'s| is)[^:\n]{0,60}:|rewritten text:|paraphrase:|"
    r"translation:|answer:|response:|instruction:|request:|question:)\s*",
    re.IGNORECASE,
)


# Prompt labels a small model echoes: a bare "Text:" line, or a settings line such as
# "Style: formal. Tone: polite." (those carry no content of the answer).
_BARE_LABEL = re.compile(
    r"^\s*(?:text|rewritten text|paraphrase|translation|answer|response|instruction|"
    r"request|rewritten request)\s*:\s*$",
    re.IGNORECASE,
)
_SETTING_LINE = re.compile(r"^\s*(?:style|tone|length|persona)\s*:[^\n]{0,120}$", re.IGNORECASE)


def clean_text(text: str) -> str:
    """A free-text answer without the wrapping small models add: a "Here is the
    rewrite:" preamble, echoed prompt labels ("Text:", "Style: formal."), code fences,
    or quotes around the whole answer."""
    text = text.strip()
    if text.startswith("```"):
        text = text.strip("`").split("\n", 1)[-1].strip()
    lines = text.splitlines()
    while lines and (not lines[0].strip() or _only_label(lines[0])):
        lines.pop(0)
    while lines and (not lines[-1].strip() or _only_label(lines[-1])):
        lines.pop()
    text = "\n".join(lines).strip()
    text = _PREAMBLE.sub("", text, count=1).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def _only_label(line: str) -> bool:
    return bool(_BARE_LABEL.match(line) or _SETTING_LINE.match(line))


def failed(record: Any) -> bool:
    """Whether an earlier step could not make this record (it carries `meta["error"]`).
    Later steps pass such a record on untouched, with no model call for it, so the chain
    rejects it with the reason of the step that failed."""
    return bool(record.meta.get("error"))


def step_failure(ctx: Context, step: str, exc: BaseException) -> dict[str, Any]:
    """The `meta["error"]` of a record a step could not make, counted in ctx.stats.

    The record still flows on: the chain rejects it with this reason, so it lands in
    rejects.jsonl and counts toward `max_attempts` (a model that never answers usably
    ends the run on its budget instead of spinning forever)."""
    reason = failure_reason(exc)
    ctx.stats[f"{step}_failed_{reason}"] += 1
    status = getattr(exc, "status", None)  # the HTTP status of a transient failure
    return {
        "step": step,
        "reason": f"{step}_{reason}",
        "detail": f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {exc}"[:500],
    }
