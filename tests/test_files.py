"""One way to write a file atomically and one way to read JSONL (`synth.files`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.errors import ConfigError
from synth.files import atomic_output, jsonl_lines, write_json_atomic
from synth.redaction import is_secret_name

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(values, max_size=8), cut=st.integers(min_value=0))
def test_a_file_cut_anywhere_reads_as_the_whole_lines_before_the_cut(
    tmp_path_factory: pytest.TempPathFactory, rows: list[object], cut: int
) -> None:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    data = text.encode()
    cut = cut % (len(data) + 1)
    path = tmp_path_factory.mktemp("cut") / "part.jsonl"
    path.write_bytes(data[:cut])  # a writer killed after `cut` bytes
    whole = data[:cut].count(b"\n")
    read = [v for _, v in jsonl_lines(path)]
    # Every complete line is read; a torn tail is skipped, unless what is left of it
    # still parses (a file without its last newline is read as written: synth's own
    # writers always end a line, and resume cuts a torn one before reading).
    assert read[:whole] == rows[:whole]
    assert len(read) in (whole, whole + 1)


def test_a_bad_line_in_the_middle_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ConfigError) as err:
        list(jsonl_lines(path))
    assert err.value.file == str(path) and err.value.path == "line 2"


def test_invalid_utf8_names_the_line_it_is_on(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 3000 + b'{"a": "\xff"}\n')  # past any read-ahead buffer
    with pytest.raises(ConfigError) as err:
        list(jsonl_lines(path))
    assert err.value.path == "line 3001" and "UTF-8" in str(err.value)


def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    write_json_atomic(path, {"status": "old"})
    with pytest.raises(RuntimeError), atomic_output(path) as fh:
        fh.write('{"status": "ha')
        raise RuntimeError("disk gone")
    assert json.loads(path.read_text()) == {"status": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("apikey", True),
        ("db_password", True),
        ("HF_TOKEN", True),
        ("aws-secret", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("keyboard_layout", False),
        ("max_tokens_per_call", False),
        ("locale", False),
    ],
)
def test_one_policy_says_which_names_hold_secrets(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_a_tolerant_reader_skips_what_a_strict_one_refuses(tmp_path: Path) -> None:
    """Reports and histories read files other processes are writing: bad lines are
    skipped there, while inputs a user gave are refused with the line."""
    path = tmp_path / "live.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n{"a": "\xff"}\n{"a": 2}\n{"a": 3')
    assert [v for _, v in jsonl_lines(path, tolerant=True)] == [{"a": 1}, {"a": 2}]
    with pytest.raises(ConfigError):
        list(jsonl_lines(path))
