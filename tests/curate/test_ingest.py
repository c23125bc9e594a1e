"""Real-data ingestion: formats, provenance and stable ids, cleaning, PII scrubbing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synth.curate.ingest import Clean, clean_text, luhn_ok, read_real, scrub_pii, strip_html
from synth.errors import ConfigError


def test_every_format_becomes_real_records_with_provenance(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "plain object"}) + "\n\n"
        + json.dumps({"id": "keep-me", "data": {"text": "a synth record"},
                      "meta": {"source": "synthetic", "x": 1}}) + "\n"
    )  # fmt: skip
    (tmp_path / "b.csv").write_text("text,label\nfrom csv,1\n")
    pq.write_table(pa.table({"text": ["from parquet"], "n": [3]}), tmp_path / "c.parquet")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.txt").write_text("a text file\n")
    recs = [r for p in ("a.jsonl", "b.csv", "c.parquet", "docs") for r in read_real(tmp_path / p)]
    assert [r.data.get("text") for r in recs] == [
        "plain object", "a synth record", "from csv", "from parquet", "a text file\n"
    ]  # fmt: skip
    assert all(r.meta["source"] == "real" for r in recs)  # a synth record's label is replaced
    assert recs[1].id == "keep-me" and recs[1].meta["x"] == 1
    assert recs[2].data == {"text": "from csv", "label": "1"}
    assert recs[0].meta["provenance"] == {
        "file": str(tmp_path / "a.jsonl"),
        "format": "jsonl",
        "row": 0,
    }
    assert recs[4].meta["provenance"]["file"] == "note.txt"
    again = list(read_real(tmp_path / "a.jsonl"))
    assert again[0].id == recs[0].id  # ids are content hashes: stable across ingests


def test_bad_inputs_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="real data not found"):
        list(read_real(tmp_path / "missing.jsonl"))
    (tmp_path / "x.xlsx").write_text("?")
    with pytest.raises(ConfigError, match="unknown real-data format"):
        list(read_real(tmp_path / "x.xlsx"))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    with pytest.raises(ConfigError, match="line 2"):
        list(read_real(tmp_path / "bad.jsonl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no readable files"):
        list(read_real(tmp_path / "empty"))


def test_html_is_parsed_not_regexed() -> None:
    html = ("<html><head><style>p {}</style></head><body><p>Fish &amp; chips</p>"
            "<script>alert(1)</script><div>1 &lt; 2 and a < b</div></body></html>")  # fmt: skip
    assert strip_html(html) == "Fish & chips\n\n1 < 2 and a < b"


def test_unicode_and_whitespace_repair_are_opt_in() -> None:
    broken = "The Mona Lisa doesnâ€™t have eyebrows.   \n\n\n\nNext"
    assert clean_text(broken, Clean()) == broken
    fixed = clean_text(broken, Clean(unicode=True, whitespace=True))
    assert fixed == "The Mona Lisa doesn't have eyebrows.\n\nNext"


def test_pii_is_scrubbed_and_counted() -> None:
    text = ("Mail ann.lee@example.co.uk or +1 (555) 123-4567. Card 4111 1111 1111 1111, "
            "not 4111 1111 1111 1112. IBAN GB82 WEST 1234 5698 7654 32. Host 10.0.0.12 "
            "and 2001:db8::1. Order 12345 on 2024-01-15 at 10:30:00, version 1.2.3.")  # fmt: skip
    stats: Counter[str] = Counter()
    out = scrub_pii(text, stats)
    assert stats == {"pii_email": 1, "pii_phone": 1, "pii_card": 1, "pii_iban": 1, "pii_ip": 2}
    assert "<EMAIL>" in out and "<CARD>" in out and "4111 1111 1111 1112" in out
    assert "2024-01-15" in out and "12345" in out and "10:30:00" in out and "1.2.3" in out
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_cleaning_applies_to_every_string_of_a_payload(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(
        json.dumps({"q": "<b>mail</b> me at bo@x.org", "tags": ["call 555-123-4567"], "n": 1})
        + "\n"
    )
    stats: Counter[str] = Counter()
    (rec,) = read_real(tmp_path / "r.jsonl", clean=Clean(html=True, pii=True), stats=stats)
    assert rec.data == {"q": "mail me at <EMAIL>", "tags": ["call <PHONE>"], "n": 1}
    assert stats["pii_email"] == 1 and stats["pii_phone"] == 1 and stats["real_read"] == 1
