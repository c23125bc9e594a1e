"""Chunking, long-context assembly, the `longqa` source and the `grounding` verifier."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from text_fixtures import (
    ROOT,
    check,
    local_model_missing,
    make_ctx,
    run_recipe_on_local_model,
    take,
)

from synth.errors import ConfigError
from synth.llm.tokens import approx_tokens
from synth.records import Record, read_jsonl, record_id
from synth.registry import lookup
from synth.testing import ScriptedLLM
from synth.text.chunks import Document, build_context, chunk, load_documents, units, whole_document
from synth.verifiers.grounding import grounding
from synth.verifiers.judge import make_judge

CORPUS = ROOT / "templates" / "corpus"


def passage(messages: list[dict[str, str]]) -> str:
    user = next(m["content"] for m in messages if m["role"] == "user")
    return user.split("Passage:\n", 1)[1].rsplit("\n\nWrite ", 1)[0]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.;])\s+", text) if len(s.split()) >= 6]


def qa_writer(messages: list[dict[str, str]], **_: object) -> dict[str, object]:
    """A fake model that writes grounded QA: the evidence is a sentence of the passage and
    the answer is a piece of that sentence."""
    n = int(re.search(r"Write (\d+) different", messages[-1]["content"]).group(1))  # type: ignore[union-attr]
    found = sentences(passage(messages))[:n] or [" ".join(passage(messages).split()[:8])]
    return {
        "qa": [
            {
                "question": f"What does the text say in part {k}?",
                "answer": " ".join(s.split()[:6]),
                "evidence": s,
            }
            for k, s in enumerate(found)
        ]
    }


def inventor(messages: list[dict[str, str]], **_: object) -> dict[str, object]:
    return {
        "qa": [
            {
                "question": "Who built the first lunar colony?",
                "answer": "The Ministry of Moons",
                "evidence": "The Ministry of Moons established the first lunar colony in 1820.",
            }
        ]
    }


def longqa(**config: object) -> object:
    return lookup("step", "longqa").factory(input=str(CORPUS), **config)


# --------------------------------------------------------------------------- chunking

WORDS = st.text("abcdefghij", min_size=1, max_size=9)
SENTENCE = st.lists(WORDS, min_size=1, max_size=30).map(lambda ws: " ".join(ws) + ".")
DOC = st.lists(SENTENCE, min_size=1, max_size=60).map(lambda ss: " ".join(ss))


@settings(max_examples=60, deadline=None)
@given(DOC, st.integers(16, 200), st.integers(0, 60))
def test_chunks_cover_the_text_within_budget_and_overlap(
    text: str, size: int, overlap: int
) -> None:
    chunks = chunk(text, max_tokens=size, overlap=overlap)
    assert chunks and chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert not text[a.end : b.start].strip()  # no gap: every word is in some chunk
        assert b.start > a.start  # progress
        if overlap >= 8 and a.tokens > overlap:
            assert b.start < a.end  # consecutive chunks share text
    for c in chunks:
        assert approx_tokens(text[c.start : c.end]) <= size * 1.25 + 4  # unit sums vs whole
    assert "".join(text[s:e] for s, e in units(text)) == text


def test_overlap_repeats_whole_sentences_of_the_previous_chunk() -> None:
    [doc] = [d for d in load_documents(CORPUS) if "declaration" in d.name]
    chunks = chunk(doc.text, max_tokens=200, overlap=40)
    assert len(chunks) > 5
    shared = [doc.text[b.start : a.end] for a, b in zip(chunks, chunks[1:], strict=False)]
    assert all(s.strip() for s in shared)
    assert all(approx_tokens(s) <= 40 for s in shared)
    # the overlap is whole sentences where one fits, else the tail of the last sentence
    assert any(s.rstrip().endswith((".", ";")) and s[0].isupper() for s in shared)


def test_documents_from_folder_file_and_jsonl(tmp_path: object) -> None:
    docs = load_documents(CORPUS)
    assert sorted(d.name.rsplit("/", 1)[1] for d in docs) == [
        "gettysburg-address.md",
        "us-constitution.txt",
        "us-declaration.txt",
    ]  # README.md is documentation, not corpus
    rows = tmp_path / "docs.jsonl"  # type: ignore[operator]
    rows.write_text(
        json.dumps({"text": "One doc.", "body": "x"}) + "\n" + json.dumps({"body": "y"})
    )
    with pytest.raises(ConfigError, match="line 2: row has no text field 'text'"):
        load_documents(rows)
    assert [d.text for d in load_documents(rows, text_field="body")] == ["x", "y"]
    with pytest.raises(ConfigError, match="input not found"):
        load_documents(tmp_path / "nope")  # type: ignore[operator]


def test_context_places_the_chunk_at_the_requested_depth() -> None:
    docs = load_documents(CORPUS)
    target = chunk(docs[2].text, max_tokens=200, overlap=20, doc=2)[3]
    for depth in (0.0, 0.25, 0.5, 0.75, 1.0):
        p = build_context(
            docs, target, context_tokens=6000, depth=depth, count=approx_tokens, order=[0, 1, 2]
        )
        assert p.context[p.span[0] : p.span[1]] == docs[2].text[target.start : target.end]
        assert abs(p.depth - depth) <= 0.05
        assert 5000 <= p.tokens <= 6100
        assert len(p.documents) >= 2
    whole = whole_document(docs, target, approx_tokens)
    assert whole.context == docs[2].text and 0 < whole.depth < 1


def test_a_single_document_corpus_gives_a_shorter_context_not_an_error() -> None:
    docs = [Document("only", "A short text. It has two sentences.")]
    ch = chunk(docs[0].text, max_tokens=50, overlap=0)[0]
    p = build_context(docs, ch, context_tokens=1000, depth=0.5, count=approx_tokens, order=[0])
    assert p.context == docs[0].text and p.tokens < 1000


# --------------------------------------------------------------------------- longqa step


def test_longqa_emits_grounded_examples_with_depth_lineage() -> None:
    llm = ScriptedLLM(qa_writer)
    ctx = make_ctx(llm)
    out = take(longqa(chunk_tokens=200, questions_per_chunk=2), ctx, 6)
    assert [r.meta["index"] for r in out] == list(range(6))
    assert [r.id for r in out] == [record_id(ctx.recipe_hash, ctx.seed, i) for i in range(6)]
    assert "qa" in llm.calls[0].schema["properties"]
    for r in out:
        info = r.meta["longqa"]
        chunk_text = r.data["context"][info["span"][0] : info["span"][1]]
        assert r.data["evidence"] in " ".join(chunk_text.split())
        assert (
            r.data["context"] == (CORPUS / info["document"].rsplit("/", 1)[1]).read_text().strip()
        )
        assert 0.0 <= info["depth"] <= 1.0
        assert r.meta["llm_calls"][0]["template_hash"]
    verdicts = [check([("grounding", grounding())], r, ctx)[1] for r in out]
    assert all(v.ok for v in verdicts), verdicts


def test_target_length_contexts_cycle_depths() -> None:
    ctx = make_ctx(ScriptedLLM(qa_writer))
    out = take(longqa(chunk_tokens=150, questions_per_chunk=1, context_tokens=3000), ctx, 5)
    targets = [r.meta["longqa"]["target_depth"] for r in out]
    assert targets == [0.0, 0.25, 0.5, 0.75, 1.0]
    for r in out:
        info = r.meta["longqa"]
        assert abs(info["depth"] - info["target_depth"]) <= 0.05
        assert 2500 <= info["context_tokens"] <= 3100
        assert len(info["documents"]) >= 2
        assert check([("grounding", grounding())], r, ctx)[1].ok


def test_resume_restarts_at_the_same_records() -> None:
    full = take(
        longqa(chunk_tokens=200, questions_per_chunk=2), make_ctx(ScriptedLLM(qa_writer)), 7
    )
    resumed = take(
        longqa(chunk_tokens=200, questions_per_chunk=2),
        make_ctx(ScriptedLLM(qa_writer), start_index=3),
        4,
    )
    assert [(r.id, r.data) for r in resumed] == [(r.id, r.data) for r in full[3:7]]


def test_an_invented_evidence_quote_is_rejected() -> None:
    ctx = make_ctx(ScriptedLLM(inventor))
    [r] = take(longqa(chunk_tokens=200, questions_per_chunk=1), ctx, 1)
    rec, verdict = check([("grounding", grounding())], r, ctx)
    assert (verdict.ok, verdict.reason) == (False, "evidence_not_in_chunk")
    assert rec.meta["verdicts"][0]["score"] < 0.85


def test_fuzzy_quote_matching_tolerates_small_slips_only() -> None:
    text = "We hold these truths to be self-evident, that all men are created equal."
    base = {"context": text, "question": "What truths?", "answer": "all men are created equal"}
    slips = "We hold these truths to be self evident that all men are created equal"
    ctx = make_ctx()
    ok = Record("a", {**base, "evidence": slips}, {})
    assert check([("g", grounding())], ok, ctx)[1].ok
    half = Record(
        "b", {**base, "evidence": "We hold these apples to be ripe, said the farmer."}, {}
    )
    assert check([("g", grounding())], half, ctx)[1].reason == "evidence_not_in_chunk"
    unsupported = Record("c", {**base, "evidence": text, "answer": "Purple giraffes dance"}, {})
    assert check([("g", grounding())], unsupported, ctx)[1].reason == "answer_unsupported"


def test_an_answer_the_judge_scores_low_is_rejected_with_its_reason() -> None:
    ctx = make_ctx(ScriptedLLM(qa_writer))
    [r] = take(longqa(chunk_tokens=200, questions_per_chunk=1), ctx, 1)
    judge_llm = ScriptedLLM([{"answerable": 2, "correct": 1, "reason": "answer is a fragment"}])
    chain = [("grounding", grounding()), ("qa-quality", make_judge(rubric="qa-quality"))]
    rec, verdict = check(chain, r, make_ctx(judge_llm))
    assert (verdict.ok, verdict.reason) == (False, "judge_low_score")
    assert "answer is a fragment" in rec.meta["verdicts"][-1]["detail"]
    assert "answer is a fragment" in verdict.detail
    shown = judge_llm.calls[0].messages[-1]["content"]
    assert r.data["context"][:200] not in shown  # the judge sees the QA, not the document


def test_grounding_with_a_judge_for_answer_support() -> None:
    ctx = make_ctx(ScriptedLLM([{"supported": 2, "reason": "not what the quote says"}]))
    text = "The Senate shall be composed of two Senators from each State."
    rec = Record(
        "s", {"context": text, "question": "How many?", "answer": "three", "evidence": text}, {}
    )
    _, verdict = check([("g", grounding(support="judge"))], rec, ctx)
    assert (verdict.ok, verdict.reason) == (False, "answer_unsupported")
    assert "not what the quote says" in verdict.detail


def test_failed_generation_is_a_reject_and_the_source_moves_on() -> None:
    from synth.errors import LLMResponseError

    answers = [LLMResponseError("bad json"), qa_writer]

    def script(messages: list[dict[str, str]], **params: object) -> object:
        a = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(a, Exception):
            raise a
        return a(messages)  # type: ignore[operator]

    ctx = make_ctx(ScriptedLLM(script))
    out = take(longqa(chunk_tokens=200, questions_per_chunk=2, concurrency=1), ctx, 3)
    assert [r.meta["index"] for r in out] == [0, 2, 3]
    assert ctx.stats["longqa_failed_llm_response_error"] == 1
    _, verdict = check([("grounding", grounding())], out[0], ctx)
    assert (verdict.ok, verdict.reason) == (False, "longqa_llm_response_error")
    assert check([("grounding", grounding())], out[1], ctx)[1].ok


# --------------------------------------------------------------------------- real tokenizers

# Digits, dates and non-Latin scripts: text a real tokenizer counts far above chars / 4.
INVOICES = " ".join(
    f"Invoice {i * 7919 % 10000:04d}-{i * 104729 % 10000:04d} was paid on 2023-{1 + i % 12:02d}-"
    f"{1 + i % 28:02d} for €{i * 37 % 5000},{i % 100:02d}; réf. Ωμέγα-{i} 東京{i}."
    for i in range(120)
)


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "local/smollm2"])
def test_chunks_respect_chunk_tokens_measured_with_the_models_tokenizer(model: str) -> None:
    from synth.llm.tokens import counter_for

    if model.startswith("local/") and local_model_missing():
        pytest.skip(f"no local tokenizer: {local_model_missing()}")
    real = counter_for(model)
    assert real is not approx_tokens
    texts = [d.text for d in load_documents(CORPUS)] + [INVOICES]
    for size in (32, 120, 384):
        for text in texts:
            chunks = chunk(text, max_tokens=size, overlap=size // 4, count=real)
            assert all(real(text[c.start : c.end]) == c.tokens <= size for c in chunks)
    # The approximation alone would have overshot: the counter is what keeps chunks in size.
    rough = chunk(INVOICES, max_tokens=120, overlap=30)
    assert max(real(INVOICES[c.start : c.end]) for c in rough) > 120


def test_longqa_measures_chunks_and_contexts_with_the_models_tokenizer() -> None:
    from synth.llm.tokens import count_tokens

    model = "openai/gpt-4o-mini"  # its tokenizer ships with litellm; the answers are scripted
    ctx = make_ctx(ScriptedLLM(qa_writer))
    out = take(longqa(model=model, chunk_tokens=100, context_tokens=800), ctx, 4)
    for r in out:
        info = r.meta["longqa"]
        start, end = info["chunk_chars"]
        document = (CORPUS / info["document"].rsplit("/", 1)[1]).read_text().strip()
        assert count_tokens(document[start:end], model=model) <= 100
        assert info["context_tokens"] == count_tokens(r.data["context"], model=model)
        assert 700 <= info["context_tokens"] <= 800


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
@pytest.mark.local_model
def test_shipped_recipe_on_the_local_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = local_model_missing()
    if reason:
        pytest.skip(reason)
    result, manifest, _ = run_recipe_on_local_model(
        "long-context-qa",
        tmp_path,
        monkeypatch,
        n=1,  # one kept example proves the path; each attempt costs the 135M model ~7 s
        settings={
            "context_tokens": 1500,
            "questions_per_chunk": 1,
            "chunk_tokens": 120,
            "max_tokens": 100,
            "allow_uncalibrated": True,  # the 135M model fails qa-quality's calibration
        },
        max_attempts=16,  # the 135M model writes a usable, grounded QA about 1 time in 10
    )
    assert result.kept == 1, manifest["counts"]
    for r in read_jsonl(result.data_path):
        info = r.meta["longqa"]
        assert r.data["context"][info["span"][0] : info["span"][1]]
        assert info["target_depth"] is not None and 0 <= info["depth"] <= 1
        assert [v["verifier"] for v in r.meta["verdicts"]] == ["grounding", "qa-quality"]
