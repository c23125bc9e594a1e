"""Real data in: JSONL, CSV, Parquet or a folder of text files, as provenance-tagged Records.

Real data is what keeps a model trained on synthetic data from collapsing, so it enters
synth with the same lineage synthetic records carry: `meta.source = "real"` and
`meta.provenance` (file, format, row). Ids are a hash of the payload, so the same real
record has the same id however often, and from whichever file, it is ingested; that is
what lets the mixer promise that the real pool only ever grows.

Cleaning is opt-in (`Clean`): Unicode repair with ftfy, HTML to text with a real HTML
parser (stdlib `html.parser`, so `a < b` stays text and `&amp;` becomes `&`), whitespace,
and PII scrubbing (emails, phone numbers, Luhn-valid card numbers, IPs, mod-97-valid
IBANs), each replacement counted in `stats` as `pii_<kind>`.
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from synth.curate.remote import is_remote, localize
from synth.errors import ConfigError
from synth.files import jsonl_lines
from synth.records import Record, content_hash

TEXT_SUFFIXES = (".txt", ".md", ".text", ".html", ".htm")
TABLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".jsonl.gz")


@dataclass(frozen=True, kw_only=True)
class Clean:
    """Which repairs to apply to every string in a payload (all off by default: real
    data is kept as it came unless the user asks)."""

    unicode: bool = False
    html: bool = False
    whitespace: bool = False
    pii: bool = False

    @property
    def active(self) -> bool:
        return self.unicode or self.html or self.whitespace or self.pii


def read_real(
    path: str | Path,
    *,
    clean: Clean | None = None,
    stats: Counter[str] | None = None,
    text_field: str = "text",
) -> Iterator[Record]:
    """Records from a file or folder (format by suffix), tagged `source: real`; an
    `hf://` or `s3://` URL is fetched first (synth/curate/remote.py)."""
    url = str(path) if is_remote(path) else None
    path = localize(url) if url else Path(path)
    clean = clean or Clean()
    stats = stats if stats is not None else Counter()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
        if not files:
            raise ConfigError(
                "no readable files in folder",
                file=str(path),
                expected=f"files ending in {', '.join(TEXT_SUFFIXES + TABLE_SUFFIXES)}",
                found="nothing usable",
            )
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(
            "real data not found",
            file=str(path),
            expected="a JSONL, CSV or Parquet file, or a folder of text files",
            fix="check the path (relative paths are taken from the current directory)",
        )
    for file in files:
        kind = _kind(file)
        if kind is None:
            raise ConfigError(
                "unknown real-data format",
                file=str(file),
                expected=f"a suffix among {', '.join(TABLE_SUFFIXES + TEXT_SUFFIXES)}",
                found=file.suffix or "(none)",
                fix="rename the file, or convert it to JSONL",
            )
        rel = url or (str(file.relative_to(path)) if path.is_dir() else str(file))
        for row, (rid, data, meta) in enumerate(_rows(file, kind, text_field)):
            if clean.active:
                data = _clean_value(data, clean, stats)
            stats["real_read"] += 1
            rid = rid or _real_id(data)
            prov = {"file": rel, "format": kind, "row": row}
            yield Record(rid, data, {**meta, "source": "real", "provenance": prov})


def _real_id(data: Any) -> str:
    return hashlib.blake2b(content_hash(data).encode(), digest_size=12).hexdigest()


def _kind(p: Path) -> str | None:
    name = p.name.lower()
    if name.endswith(".jsonl.gz"):
        return "jsonl.gz"
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    if suffix in TEXT_SUFFIXES:
        return "text"
    return None


Row = tuple[str | None, dict[str, Any], dict[str, Any]]


def _rows(file: Path, kind: str, text_field: str) -> Iterator[Row]:
    if kind in ("jsonl", "jsonl.gz"):
        yield from _jsonl_rows(file, text_field)
    elif kind == "csv":
        with open(file, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                yield None, dict(row), {}
    elif kind == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - pyarrow is a dependency
            raise ConfigError("reading Parquet needs pyarrow", fix="pip install pyarrow") from exc
        try:
            pf = pq.ParquetFile(file)
            for batch in pf.iter_batches(batch_size=4096):
                for obj in batch.to_pylist():
                    yield None, obj, {}
        except Exception as exc:
            raise ConfigError(f"unreadable Parquet: {exc}", file=str(file)) from exc
    else:
        text = file.read_text(encoding="utf-8", errors="replace")
        yield None, {text_field: text}, {}


def _jsonl_rows(file: Path, text_field: str) -> Iterator[Row]:
    for n, obj in jsonl_lines(file, what="one JSON object per line"):
        if isinstance(obj, str):
            obj = {text_field: obj}
        if not isinstance(obj, dict):
            raise ConfigError(
                "a line is not a JSON object",
                file=str(file),
                path=f"line {n}",
                expected='an object such as {"text": ...}',
                found=type(obj).__name__,
            )
        if isinstance(obj.get("data"), dict) and isinstance(obj.get("id"), str):
            meta = dict(obj.get("meta") or {})
            meta.pop("source", None)
            yield obj["id"], obj["data"], meta
        else:
            yield None, obj, {}


# -- cleaning ----------------------------------------------------------------------------
def _clean_value(v: Any, clean: Clean, stats: Counter[str]) -> Any:
    if isinstance(v, str):
        return clean_text(v, clean, stats)
    if isinstance(v, dict):
        return {k: _clean_value(x, clean, stats) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean_value(x, clean, stats) for x in v]
    return v


def clean_text(text: str, clean: Clean, stats: Counter[str] | None = None) -> str:
    """Apply the chosen repairs to one string, in a fixed order (Unicode first, so the
    HTML parser and the PII patterns see repaired characters)."""
    stats = stats if stats is not None else Counter()
    if clean.unicode:
        import ftfy

        fixed = ftfy.fix_text(text)
        if fixed != text:
            stats["unicode_fixed"] += 1
        text = fixed
    if clean.html and ("<" in text or "&" in text):
        text = strip_html(text)
    if clean.whitespace:
        text = _squash(text)
    if clean.pii:
        text = scrub_pii(text, stats)
    return text


class _Text(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "noscript", "template"})
    _BLOCK = frozenset(
        {
            *("p", "div", "br", "li", "ul", "ol", "tr", "table", "pre", "blockquote", "hr"),
            *("h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "header", "footer"),
            *("dd", "dt"),
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment; block elements become line breaks."""
    parser = _Text()
    parser.feed(text)
    parser.close()
    return _squash("".join(parser.parts))


def _squash(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# -- PII ---------------------------------------------------------------------------------
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                   r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])")  # fmt: skip
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,5}){1,4}(?![\w-])"
)
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")


def luhn_ok(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        double = not double
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def scrub_pii(text: str, stats: Counter[str] | None = None) -> str:
    """Replace emails, IBANs, card numbers (Luhn-checked), IPs and phone numbers with
    `<EMAIL>` ... placeholders, counting each kind in `stats` as `pii_<kind>`."""
    stats = stats if stats is not None else Counter()

    def sub(pattern: re.Pattern[str], kind: str, ok: Callable[[str], bool]) -> None:
        nonlocal text

        def repl(m: re.Match[str]) -> str:
            if not ok(m.group(0)):
                return m.group(0)
            stats[f"pii_{kind}"] += 1
            return f"<{kind.upper()}>"

        text = pattern.sub(repl, text)

    sub(_EMAIL, "email", lambda s: True)
    sub(_IBAN, "iban", iban_ok)
    sub(_CARD, "card", lambda s: luhn_ok(re.sub(r"\D", "", s)))
    sub(_IPV4, "ip", lambda s: True)
    sub(_IPV6, "ip", _is_ipv6)
    sub(_PHONE, "phone", _phone_ok)
    return text


def _is_ipv6(s: str) -> bool:
    try:
        return ipaddress.ip_address(s).version == 6
    except ValueError:
        return False


def _phone_ok(s: str) -> bool:
    digits = sum(c.isdigit() for c in s)
    if _DATE.match(s.strip()):
        return False
    marked = s.lstrip().startswith(("+", "("))
    return (7 if marked else 9) <= digits <= 15
