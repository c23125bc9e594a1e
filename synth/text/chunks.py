"""Documents in, token-aware overlapping chunks out, and long contexts built around them.

A chunk is a span `[start, end)` of its document, so the text a question was written
from can be placed verbatim inside a longer context and found again by offset: that is
what lets the grounding verifier check an evidence quote against exactly the chunk it
came from, and lets the long-context builder record at what depth the chunk sits.

Token counts come from the model's own tokenizer when the LLM layer has it offline
(`synth.llm.tokens.counter_for`: the GGUF's for local models, tiktoken's through litellm
for OpenAI models); otherwise, or when no model is known, from `approx_tokens`, a
documented approximation (see there)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from synth.errors import ConfigError
from synth.files import jsonl_lines
from synth.llm.tokens import TokenCounter, approx_tokens

DOC_SUFFIXES = (".txt", ".md", ".markdown", ".jsonl")
# A sentence (to its end mark and closing quote) or a paragraph without one, with the
# whitespace after it; single line breaks inside hard-wrapped text do not end a unit.
_UNIT = re.compile(r"(?:[^.!?;\n]|\n(?!\s*\n))*(?:[.!?;]+[\"')\]]*\s*|\n\s*\n\s*|$)")


@dataclass(frozen=True, slots=True)
class Document:
    name: str  # file path (or `path#line` for a JSONL row): lineage and dedup
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    doc: int  # index into the document list
    index: int  # chunk number within the document
    start: int
    end: int
    tokens: int


def load_documents(path: str | Path, *, text_field: str = "text") -> list[Document]:
    """Documents from a file or a folder (recursively, sorted for determinism): `.txt` and
    `.md` files are one document each; each `.jsonl` row with a `text_field` is one."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in DOC_SUFFIXES)
        files = [p for p in files if p.name.lower() not in ("readme.md", "license.md")]
    elif root.is_file():
        files = [root]
    else:
        raise ConfigError(
            "input not found",
            path="settings.input",
            expected="a file or folder of .txt, .md or .jsonl documents",
            found=str(path),
            fix="pass --input PATH (relative paths are taken from the current directory)",
        )
    docs: list[Document] = []
    for f in files:
        if f.suffix.lower() == ".jsonl":
            docs.extend(_jsonl_documents(f, text_field))
        else:
            text = f.read_text(encoding="utf-8", errors="replace").strip()
            if text:
                docs.append(Document(str(f), text))
    if not docs:
        raise ConfigError(
            "no documents found",
            path="settings.input",
            expected=f"non-empty files ending in {', '.join(DOC_SUFFIXES)}",
            found=str(path),
            fix="point --input at a folder of text documents",
        )
    return docs


def _jsonl_documents(file: Path, text_field: str) -> Iterator[Document]:
    for n, row in jsonl_lines(file, what="one JSON object per line"):
        data = row.get("data", row) if isinstance(row, dict) else {}
        text = data.get(text_field) if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise ConfigError(
                f"row has no text field {text_field!r}",
                file=str(file),
                path=f"line {n}",
                expected=f"an object with a string field {text_field!r}",
                found=sorted(data) if isinstance(data, dict) else row,
                fix="set `text_field:` on the longqa step to the field holding the text",
            )
        if text.strip():
            yield Document(f"{file}#{n}", text.strip())


def units(text: str) -> list[tuple[int, int]]:
    """Sentence-ish spans (sentence ends, line breaks), covering the text without gaps."""
    out = []
    for m in _UNIT.finditer(text):
        if m.end() > m.start():
            out.append((m.start(), m.end()))
    return out


def chunk(
    text: str, *, max_tokens: int, overlap: int, count: TokenCounter = approx_tokens, doc: int = 0
) -> list[Chunk]:
    """Split into chunks of at most ~`max_tokens`, consecutive chunks sharing about
    `overlap` tokens of whole sentences, so a fact cut by one boundary is whole in the
    neighbour. A sentence longer than `max_tokens` is cut at word boundaries."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    overlap = max(0, min(overlap, max_tokens // 2))
    spans: list[tuple[int, int, int]] = []
    for s, e in units(text):
        if not text[s:e].strip():
            continue
        n = count(text[s:e])
        if n <= max_tokens:
            spans.append((s, e, n))
        else:
            spans.extend(_split_long(text, s, e, max_tokens, count))
    chunks: list[Chunk] = []
    i = 0
    while i < len(spans):
        j, total = i, 0
        while j < len(spans) and (total + spans[j][2] <= max_tokens or j == i):
            total += spans[j][2]
            j += 1
        start = _lstrip(text, spans[i][0], spans[j - 1][1])
        end = _rstrip(text, start, spans[j - 1][1])
        total = count(text[start:end])
        while total > max_tokens and j - 1 > i:
            # A real tokenizer can count joined sentences higher than their sum (a run of
            # blank lines splits differently before a word): drop sentences until it fits.
            j -= 1
            end = _rstrip(text, start, spans[j - 1][1])
            total = count(text[start:end])
        chunks.append(Chunk(doc, len(chunks), start, end, total))
        if j >= len(spans):
            break
        k, back = j, 0  # walk back from the end while whole sentences fit in `overlap`
        while k - 1 > i and back + spans[k - 1][2] <= overlap:
            k -= 1
            back += spans[k][2]
        if k == j and overlap > 0:  # the last sentence alone is too long: share its tail
            s, e, _n = spans[j - 1]
            cut = _tail_start(text, s, e, overlap, count)
            if s < cut < e:
                spans[j - 1 : j] = [(s, cut, count(text[s:cut])), (cut, e, count(text[cut:e]))]
                k = j  # the tail piece
        i = k
    return chunks


def _tail_start(text: str, s: int, e: int, budget: int, count: TokenCounter) -> int:
    """Where the longest run of whole words ending at `e` that fits in `budget` starts."""
    starts = [m.start() + s for m in re.finditer(r"\S+", text[s:e])]
    k = _most_that_fit(len(starts), lambda k: count(text[starts[-k] : e]) <= budget)
    return starts[-k] if k else e


def _split_long(
    text: str, s: int, e: int, max_tokens: int, count: TokenCounter
) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    words = [(m.start() + s, m.end() + s) for m in re.finditer(r"\S+\s*", text[s:e])]
    i = 0
    while i < len(words):
        first = words[i][0]

        def fits(k: int, i: int = i, first: int = first) -> bool:
            return count(text[first : words[i + k - 1][1]]) <= max_tokens

        k = _most_that_fit(len(words) - i, fits)
        j = i + max(1, k)  # a single word over the limit is a piece of its own
        out.append((first, words[j - 1][1], count(text[first : words[j - 1][1]])))
        i = j
    return out


def _most_that_fit(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k <= n with `fits(k)` (whether the first k words fit), for `fits` true
    up to some k and false after. Galloping, then bisecting: O(log k) counts of spans
    about k words long, where adding one word at a time would count O(k) of them."""
    good, step = 0, 1
    while good + step <= n and fits(good + step):
        good += step
        step *= 2
    bad = min(good + step, n + 1)
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


def _lstrip(text: str, start: int, end: int) -> int:
    while start < end and text[start].isspace():
        start += 1
    return start


def _rstrip(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


# --------------------------------------------------------------------------- contexts


@dataclass(frozen=True, slots=True)
class Placement:
    """A context built around a chunk: where the chunk sits (`span`, character offsets)
    and how deep (tokens before it / (context tokens - chunk tokens), 0 = start)."""

    context: str
    span: tuple[int, int]
    depth: float
    tokens: int
    documents: tuple[str, ...]  # names, in the order they appear


def whole_document(docs: list[Document], ch: Chunk, count: TokenCounter) -> Placement:
    """The chunk's own document as the context; the depth is where the chunk falls."""
    text = docs[ch.doc].text
    total, before = count(text), count(text[: ch.start])
    depth = before / max(1, total - count(text[ch.start : ch.end]))
    return Placement(
        text, (ch.start, ch.end), round(min(1.0, depth), 4), total, (docs[ch.doc].name,)
    )


def build_context(
    docs: list[Document],
    ch: Chunk,
    *,
    context_tokens: int,
    depth: float,
    count: TokenCounter,
    order: list[int],
) -> Placement:
    """About `context_tokens` tokens with the chunk at `depth`: the chunk with as much of
    its own document around it as fits, then other documents (taken in `order`, cycled
    if the corpus is small, never the chunk's own) before and after to reach the target.
    A corpus with one document gives a shorter context; `tokens` says what was reached."""
    text = docs[ch.doc].text
    core = text[ch.start : ch.end]
    room = max(0, context_tokens - count(core))
    want_before = round(max(0.0, min(1.0, depth)) * room)
    own_before = _take_back(text, 0, ch.start, want_before, count)
    own_after = _take_forward(text, ch.end, len(text), room - want_before, count)
    fill_before_budget = want_before - count(own_before)
    fill_after_budget = room - want_before - count(own_after)
    others = [i for i in order if i != ch.doc]
    stream = _filler(docs, others)
    before_docs, fill_before = _take_docs(stream, fill_before_budget, count)
    after_docs, fill_after = _take_docs(stream, fill_after_budget, count)
    head = "\n\n".join(p for p in (*fill_before, own_before) if p)
    head = head + ("\n\n" if fill_before and not own_before else "")
    tail = "\n\n".join(p for p in (own_after, *fill_after) if p)
    tail = ("\n\n" if fill_after and not own_after else "") + tail
    context = head + core + tail
    span = (len(head), len(head) + len(core))
    total = count(context)
    achieved = count(context[: span[0]]) / max(1, total - count(core))
    names = (*before_docs, docs[ch.doc].name, *after_docs)
    return Placement(
        context, span, round(min(1.0, achieved), 4), total, tuple(dict.fromkeys(names))
    )


def _take_back(text: str, lo: int, hi: int, budget: int, count: TokenCounter) -> str:
    """The longest run of whole sentences ending at `hi` that fits in `budget` tokens."""
    spans = [(s + lo, e + lo) for s, e in units(text[lo:hi])]
    start, used = hi, 0
    for s, _e in reversed(spans):
        n = count(text[s:start])
        if used + n > budget:
            break
        used, start = used + n, s
    return text[start:hi]


def _take_forward(text: str, lo: int, hi: int, budget: int, count: TokenCounter) -> str:
    spans = [(s + lo, e + lo) for s, e in units(text[lo:hi])]
    end, used = lo, 0
    for _s, e in spans:
        n = count(text[end:e])
        if used + n > budget:
            break
        used, end = used + n, e
    return text[lo:end]


def _filler(docs: list[Document], order: list[int]) -> Iterator[tuple[str, str]]:
    """(document name, sentence) pieces of the other documents, cycling; empty if none."""
    if not order:
        return
    while True:
        for i in order:
            for s, e in units(docs[i].text):
                yield docs[i].name, docs[i].text[s:e]
            yield docs[i].name, "\n\n"  # a document boundary


def _take_docs(
    stream: Iterator[tuple[str, str]], budget: int, count: TokenCounter
) -> tuple[list[str], list[str]]:
    names: list[str] = []
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for name, piece in stream:
        if piece == "\n\n":
            if current:
                parts.append("".join(current).strip())
                current = []
            continue
        n = count(piece)
        if used + n > budget:
            break
        used += n
        current.append(piece)
        if not names or names[-1] != name:
            names.append(name)
    if current:
        parts.append("".join(current).strip())
    return names, [p for p in parts if p]
