"""`faithful`: text derived from a source (a summary, an answer, a paraphrase) says nothing
the source does not.

A small model's summary reads fine and invents facts: "a standard 24-hour payment with a
15-day return policy" for a ticket about an unexpected charge. Shape checks (a regex, a
length) cannot see that; a judge could, but a judge on the same small model cannot be
trusted (and costs a call). This check is lexical, deterministic and costs microseconds:

- every number in the output (amounts, dates, ids, counts: "$176.78" matches "176.78",
  "10-day" matches "10 days") must be a number of the source;
- every name (a capitalised word mid-sentence or a run of them: "Nimbus X2 Router",
  "AI") must be made of the source's words;
- at least `min_support` of the output's content words (stopwords ignored, see
  `synth.text.similarity.content_words`) must occur in the source;
- none of the `banned` filler phrases may occur.

`allow` lists words, phrases or regular expressions (matched as whole words,
case-insensitive) that the output may use without the source: the vocabulary of the
task itself ("customer", "requests"). Text they match is ignored by every check.
Reasons name what was invented, e.g. `invented_number: 24-hour, 15-day` or
`ungrounded: helpful positive impact`.

    - use: faithful
      field: summary
      source: [product, subject, body]
      allow: [customer, "request(s|ed)?"]
      min_support: 0.8
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from synth.chain import Verdict, Verifier
from synth.context import Context
from synth.records import Record
from synth.registry import verifier
from synth.text.similarity import STOPWORDS, content_words, fold_text, folded_words
from synth.verifiers._fields import get_path
from synth.verifiers.rules import compile_pattern

_PATHS = {"type": "array", "items": {"type": "string"}, "minItems": 1}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["field", "source"],
    "properties": {
        "field": {"type": "string", "description": "the derived text, e.g. data.summary"},
        "source": {
            "description": "the field(s) it is derived from, e.g. [subject, body]",
            "oneOf": [{"type": "string"}, _PATHS],
        },
        "allow": {
            "type": "array",
            "items": {"type": "string"},
            "description": "words or regexes (whole-word, case-insensitive) allowed anyway",
        },
        "min_support": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.8},
        "banned": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "filler phrases that reject the output (case-insensitive)",
        },
        "names": {"type": "boolean", "default": True, "description": "check names too"},
        "min_words": {
            "type": "integer",
            "minimum": 0,
            "default": 0,
            "description": "content words from the source an output needs (not too vague)",
        },
    },
    "additionalProperties": False,
}

# A number as written: 176.78, 1,299.00, 2024 (in 2024-03-05), 2 (in X2), 10 (in 10-day).
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_WORD = re.compile(r"[^\W_][\w'\u2019-]*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?:]\s*$")
_EDGE = "\"'()[]{}<>.,;:!?\u2018\u2019\u201c\u201d"


@verifier("faithful", schema=SCHEMA)
def faithful(
    *,
    field: str,
    source: str | list[str],
    allow: list[str] | None = None,
    min_support: float = 0.8,
    banned: list[str] | None = None,
    names: bool = True,
    min_words: int = 0,
) -> Verifier:
    """Numbers, names and content words of a derived text must come from its source."""
    sources = [source] if isinstance(source, str) else list(source)
    for i, p in enumerate(allow or ()):
        compile_pattern(p, f"$.allow[{i}]")  # one bad pattern is reported by its index
    alternatives = "|".join(f"(?:{p})" for p in allow or ())
    allowed = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.I) if allow else None
    phrases = [(p, fold_text(p)) for p in banned or ()]

    async def check(record: Record, ctx: Context) -> Verdict:
        text = get_path(record, field)
        if not isinstance(text, str) or not text.strip():
            return Verdict(False, 0.0, "missing_field", f"{field} is empty or not text")
        parts = [get_path(record, s) for s in sources]
        ref = "\n".join(str(p) for p in parts if p is not None and not isinstance(p, dict | list))
        if not ref.strip():
            return Verdict(False, None, "missing_source", f"{', '.join(sources)}: no text")
        verdict = judge_text(text, ref, allowed, min_support, phrases, names)
        grounded = _grounded_count(text, ref, allowed)
        if verdict.ok and grounded < min_words:  # "The customer has a problem with a product."
            detail = f"{grounded} content words from the source (min {min_words})"
            return Verdict(False, verdict.score, "too_vague", detail)
        return verdict

    return check


def judge_text(
    text: str,
    ref: str,
    allowed: re.Pattern[str] | None,
    min_support: float,
    phrases: list[tuple[str, str]],
    names: bool,
) -> Verdict:
    """The verdict on `text` against `ref`; the first kind of invention found decides."""
    folded = fold_text(text)
    if allowed is not None:
        text = allowed.sub(" ", text)
    hits = [shown for shown, p in phrases if p in folded]
    if hits:
        return Verdict(False, 0.0, "banned_phrase", "banned_phrase: " + ", ".join(hits))
    numbers = invented_numbers(text, ref)
    if numbers:
        return Verdict(False, 0.0, "invented_number", "invented_number: " + ", ".join(numbers))
    if names:
        unknown = invented_names(text, ref)
        if unknown:
            return Verdict(False, 0.0, "invented_name", "invented_name: " + ", ".join(unknown))
    words = [w for w in content_words(text) if len(w) > 1 or w.isdigit()]  # "customer's"
    loose = ungrounded(words, ref)
    backed = 1.0 if not words else round(1 - len(loose) / len(words), 4)
    detail = f"support {backed:.2f} (min {min_support:g})"
    if backed < min_support:
        return Verdict(False, backed, "ungrounded", f"ungrounded: {' '.join(loose)}; {detail}")
    return Verdict(True, backed, "", detail + (f"; unmatched: {' '.join(loose)}" if loose else ""))


def _grounded_count(text: str, ref: str, allowed: re.Pattern[str] | None) -> int:
    masked = allowed.sub(" ", text) if allowed is not None else text
    words = {w for w in content_words(masked) if len(w) > 1 or w.isdigit()}
    return len(words) - len(ungrounded(sorted(words), ref))


def number_values(text: str) -> set[str]:
    """Every number in `text`, normalised: thousands commas and trailing decimal zeros
    dropped, leading zeros too ("05" is "5"), so "$1,299.50" and "1299.5" are equal."""
    return {_norm_number(m) for m in _NUMBER.findall(text)}


def invented_numbers(text: str, ref: str) -> list[str]:
    """Tokens of `text` holding a number the source lacks (shown as written: "24-hour")."""
    have = number_values(ref)
    out: list[str] = []
    for raw in text.split():
        token = raw.strip(_EDGE)
        values = number_values(token)
        if values and not values <= have and token not in out:
            out.append(token)
    return out


def invented_names(text: str, ref: str) -> list[str]:
    """Names in `text` (see `names`) with a word the source does not have."""
    have = set(folded_words(ref))
    out: list[str] = []
    for name in names_in(text):
        if name not in out and any(w not in have for w in folded_words(name)):
            out.append(name)
    return out


def names_in(text: str) -> list[str]:
    """Runs of capitalised words ("Nimbus X2 Router", "Lisa Day", "AI"), leading
    stopwords dropped ("The Nimbus ..."). A lone capitalised word opening a sentence is
    ordinary capitalisation, not a name; the content-word check still sees it."""
    found: list[str] = []
    run: list[str] = []
    opens = False
    prev_end = 0
    for m in _WORD.finditer(text):
        word = _possessive(m.group())
        gap = text[prev_end : m.start()]
        starts = prev_end == 0 or bool(_SENTENCE_END.search(text[: m.start()]))
        if run and gap != " ":  # punctuation between two words ends a name
            _flush(run, opens, found)
            run = []
        if _capitalised(word):
            if not run:
                opens = starts
            run.append(word)
        elif run:
            _flush(run, opens, found)
            run = []
        prev_end = m.end()
    _flush(run, opens, found)
    return found


def ungrounded(words: Iterable[str], ref: str) -> list[str]:
    """Content words not in the source, each once. A word counts as present when the
    source has it, its singular/plural, or (long words) the same first five letters,
    as `similarity.support` does: "refunded" is backed by "refund", and a short word
    by a longer one it begins ("wait" by "waiting")."""
    have = set(folded_words(ref))
    bare = {w.rstrip("s") for w in have}
    stems = {w[:5] for w in have if len(w) >= 5}
    heads = {w[:k] for w in have for k in (4, 5) if len(w) > k}
    out: list[str] = []
    for w in words:
        present = (
            w in have
            or w.rstrip("s") in bare
            or (len(w) > 5 and w[:5] in stems)
            or (len(w) in (4, 5) and w in heads)
        )
        if not present and w not in out:
            out.append(w)
    return out


def _flush(run: list[str], opens_sentence: bool, found: list[str]) -> None:
    words = list(run)
    while words and words[0].lower() in STOPWORDS:
        words.pop(0)
        opens_sentence = False
    if not words or (opens_sentence and len(words) == 1):
        return
    name = " ".join(words)
    if name not in found:
        found.append(name)


def _capitalised(word: str) -> bool:
    if re.split(r"['\u2019]", word)[0] == "I":  # I, I'm, I'll: a pronoun, not a name
        return False
    return word[0].isupper() or (word[0].isdigit() and any(c.isupper() for c in word))


def _possessive(word: str) -> str:
    for tail in ("'s", "\u2019s"):
        if word.endswith(tail):
            return word[: -len(tail)]
    return word.rstrip("'\u2019-")


def _norm_number(raw: str) -> str:
    value = raw.replace(",", "")
    whole, dot, frac = value.partition(".")
    whole = whole.lstrip("0") or "0"
    frac = frac.rstrip("0")
    return f"{whole}.{frac}" if dot and frac else whole
