"""rapidfuzz similarity against the difflib implementation it replaced.

The reference below is the old `synth.text.similarity` code, copied verbatim: the
verifiers' decisions with the recalibrated thresholds must agree with it (and with the
labels) on labeled quotes and paraphrases, scores must stay close near the cut-offs, and
the new code must be much faster on a long chunk, which is why it was changed."""

from __future__ import annotations

import asyncio
import random
import re
import time
from difflib import SequenceMatcher
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from text_fixtures import check, make_ctx

from synth.records import Record
from synth.text.similarity import edit_ratio, fold_text, partial_ratio
from synth.verifiers.grounding import grounding
from synth.verifiers.novelty import novelty

ROOT = Path(__file__).resolve().parents[2]
DECL = (ROOT / "templates" / "corpus" / "us-declaration.txt").read_text()
MIN_QUOTE = 0.85  # grounding's default, old and new
MAX_EDIT = 0.85  # novelty's default, old and new


# -- the reference: difflib, as synth had it ---------------------------------------------
def old_edit_ratio(a: str, b: str) -> float:
    na, nb = fold_text(a), fold_text(b)
    if na == nb:
        return 1.0
    sm = SequenceMatcher(None, na, nb, autojunk=False)
    if sm.real_quick_ratio() == 0.0:
        return 0.0
    return sm.ratio()


def old_partial_ratio(needle: str, haystack: str) -> float:
    n, h = fold_text(needle), fold_text(haystack)
    if not n:
        return 0.0
    if n in h:
        return 1.0
    if len(n) >= len(h):
        return SequenceMatcher(None, n, h, autojunk=False).ratio()
    best = 0.0
    blocks = SequenceMatcher(None, n, h, autojunk=False).get_matching_blocks()
    for a, b, size in blocks:
        if size == 0:
            continue
        start = min(max(0, b - a), len(h) - len(n))
        window = h[start : start + len(n)]
        best = max(best, SequenceMatcher(None, n, window, autojunk=False).ratio())
        if best >= 0.999:
            break
    return best


# -- labeled cases ------------------------------------------------------------------------
def _chunk(start: str, size: int = 2600) -> str:
    at = DECL.index(start)
    return DECL[at : at + size]


CH1, CH2 = _chunk("When in the Course"), _chunk("He has refused his Assent")

# (quote, chunk, is it really in the chunk?) Real quotes carry the slips models make:
# dropped commas, curly quotes, case, a changed or dropped word.
QUOTES = [
    ("all men are created equal, that they are endowed by their Creator", CH1, True),
    ("all men are created equal that they are endowed by their Creator", CH1, True),
    ("We hold these truths to be self evident, that all men are created equal", CH1, True),
    (
        "\u201cGovernments are instituted among Men, deriving their just powers from the "
        "consent of the governed\u201d",
        CH1,
        True,
    ),
    (
        "Governments are instituted among men, deriving their powers from the consent of "
        "the governed",
        CH1,
        True,
    ),
    ("mankind are more disposed to suffer, while evils are sufferable", CH1, True),
    ("it is their right, it is their duty, to throw off such Government", CH1, True),
    (
        "Prudence indeed will dictate that governments long-established should not be "
        "changed for slight and transient causes",
        CH1,
        True,
    ),
    ("He has dissolved Representative Houses repeatedly", CH2, True),
    ("for the sole purpose of fatiguing them into compliance with his measures", CH2, True),
    (
        "He has obstructed the Administration of Justice by refusing his Assent to Laws "
        "for establishing Judiciary powers",
        CH2,
        True,
    ),
    ("a right inestimable to them and formidable to tyrants only", CH2, True),
    ("the people have a right to bear arms and to form a militia", CH1, False),
    ("Congress shall make no law respecting an establishment of religion", CH1, False),
    ("The King has taxed the colonies without their consent and quartered soldiers", CH2, False),
    ("He has refused to meet with the colonial delegates in Philadelphia", CH2, False),
    ("all citizens are born free and equal in dignity and rights", CH1, False),
    ("the government derives its authority from the will of the majority", CH1, False),
    ("We hold these apples to be ripe, said the farmer.", CH1, False),
    ("the history of the present King is one of kindness and generosity", CH2, False),
    ("He has called together the Parliament at Westminster to pass new taxes", CH2, False),
    ("Liberty and justice for all shall be the foundation of the new republic", CH1, False),
    ("the right of the people to elect their own governors every four years", CH2, False),
]

ORIGINALS = [
    "My card was charged twice for the same order last Tuesday and I still have not "
    "received a refund. Please fix this as soon as possible.",
    "I cannot log in to my account since the password reset; the page just reloads and "
    "shows no error message.",
    "The package arrived with a broken screen. I would like a replacement rather than a "
    "refund, if that is possible.",
    "Your app crashes every time I try to upload a photo larger than ten megabytes on my "
    "Android phone.",
]
ORIG = ORIGINALS
# (rewrite, original, is it a near copy?)
PARAPHRASES = [
    (ORIG[0], ORIG[0], True),
    (ORIG[0].replace("last Tuesday", "on Tuesday"), ORIG[0], True),
    (ORIG[0].replace("Please fix this", "Please sort this out"), ORIG[0], True),
    (ORIG[0].lower().replace(".", ""), ORIG[0], True),
    (ORIG[1].replace("since the password reset", "after the password reset"), ORIG[1], True),
    (ORIG[1].replace("the page just reloads", "the page simply reloads"), ORIG[1], True),
    (ORIG[2].replace("broken screen", "cracked screen"), ORIG[2], True),
    (ORIG[2].replace("I would like", "I'd like"), ORIG[2], True),
    (ORIG[3].replace("every time", "each time"), ORIG[3], True),
    (
        "I was billed two times for one order on Tuesday, and there is still no refund. "
        "Could you resolve it quickly?",
        ORIG[0],
        False,
    ),
    ("Double charge on my Tuesday order, no refund yet - please help urgently.", ORIG[0], False),
    (
        "Ever since I reset my password, logging in fails: the page refreshes without "
        "showing any error.",
        ORIG[1],
        False,
    ),
    ("Login broke for me after resetting the password. No error, it only reloads.", ORIG[1], False),
    (
        "My order came with the screen smashed. Instead of getting my money back I'd "
        "prefer a new unit.",
        ORIG[2],
        False,
    ),
    ("The screen was damaged on arrival; could you send another one instead?", ORIG[2], False),
    ("Uploading any picture over 10 MB makes the Android app close immediately.", ORIG[3], False),
    (
        "On my Android device the application crashes whenever a photo above ten megabytes "
        "is uploaded.",
        ORIG[3],
        False,
    ),
]


def _grounded(quote: str, chunk: str) -> bool:
    rec = Record("q", {"context": chunk, "evidence": quote, "answer": "x"}, {})
    verdict = check([("grounding", grounding(support="none"))], rec, make_ctx())[1]
    assert verdict.ok or verdict.reason == "evidence_not_in_chunk"
    return verdict.ok


def _near_copy(rewrite: str, original: str) -> bool:
    # Jaccard disabled (1.0): this isolates the edit-ratio decision that changed.
    rec = Record("p", {"text": rewrite}, {"originals": {"text": original}})
    verdict = check([("novelty", novelty(field="text", max_jaccard=1.0))], rec, make_ctx())[1]
    return verdict.reason == "near_copy"


@pytest.mark.parametrize(("quote", "chunk", "real"), QUOTES, ids=[q[:30] for q, _, _ in QUOTES])
def test_grounding_decides_labeled_quotes_as_difflib_did(
    quote: str, chunk: str, real: bool
) -> None:
    assert (old_partial_ratio(quote, chunk) >= MIN_QUOTE) == real
    assert _grounded(quote, chunk) == real


@pytest.mark.parametrize(
    ("rewrite", "original", "copy"), PARAPHRASES, ids=[p[:30] for p, _, _ in PARAPHRASES]
)
def test_novelty_decides_labeled_paraphrases_as_difflib_did(
    rewrite: str, original: str, copy: bool
) -> None:
    assert (old_edit_ratio(rewrite, original) > MAX_EDIT) == copy
    assert _near_copy(rewrite, original) == copy


def _mutate(rng: random.Random, sentence: str, edits: int, vocab: list[str]) -> str:
    w = sentence.split()
    for _ in range(edits):
        op, i = rng.random(), rng.randrange(len(w))
        if op < 0.5:
            w[i] = rng.choice(vocab)
        elif op < 0.75 and len(w) > 3:
            del w[i]
        else:
            w.insert(i, rng.choice(vocab))
    return " ".join(w)


def test_decisions_agree_with_difflib_on_a_mutation_sweep() -> None:
    """Sentences of the corpus with 0-11 random word edits, quoted from a chunk around
    them and compared with their original: the thresholds' calibration set."""
    rng = random.Random(0)
    sents = [s.strip().replace("\n", " ") for s in re.split(r"[.;]", DECL)]
    sents = [s for s in sents if 60 < len(s) < 260]
    vocab = sorted(set(DECL.split()))
    quote_agree = edit_agree = 0
    gaps: list[float] = []  # new - old edit ratio, near the cut-off
    off_by: list[float] = []  # how far from the cut-off the old score of a disagreement was
    n, n_quotes = 400, 100  # difflib's window search is slow: quotes on a subset
    for k in range(n):
        s = rng.choice(sents)
        at = DECL.find(s)
        chunk = DECL[max(0, at - rng.randrange(1000)) : at + len(s) + rng.randrange(1000)]
        q = _mutate(rng, s, rng.randrange(12), vocab)
        if k < n_quotes:
            old_q, new_q = old_partial_ratio(q, chunk), partial_ratio(q, chunk)
            quote_agree += (old_q >= MIN_QUOTE) == (new_q >= MIN_QUOTE)
            assert new_q >= old_q - 1e-9  # LCS >= difflib's matching blocks
        old_e, new_e = old_edit_ratio(q, s), edit_ratio(q, s)
        same = (old_e > MAX_EDIT) == (new_e > MAX_EDIT)
        edit_agree += same
        if not same:
            off_by.append(MAX_EDIT - old_e)
        assert new_e >= old_e - 1e-9
        if 0.75 < old_e < 0.95:
            gaps.append(new_e - old_e)
    print(f"quote decisions agree {quote_agree / n_quotes:.1%}, edit {edit_agree / n:.1%}; "
          f"edit ratio near 0.85 moves by {sum(gaps) / len(gaps):+.4f} on average, "
          f"at most {max(gaps):+.4f}; disagreements at most {max(off_by, default=0):.4f} "
          "below the cut-off")  # fmt: skip
    assert quote_agree / n_quotes >= 0.98
    assert edit_agree / n >= 0.98
    assert sum(gaps) / len(gaps) < 0.01 and max(off_by, default=0) < 0.03


def test_a_long_chunk_is_matched_far_faster_than_with_difflib() -> None:
    chunk = DECL * 4  # about 37k characters, a long-context chunk
    quote = "He has kept among us, in times of peace, Standing Armies without our Consent"
    assert partial_ratio(quote, chunk) == pytest.approx(old_partial_ratio(quote, chunk), abs=0.02)

    def per_call(fn: object) -> float:
        t0 = time.perf_counter()
        for _ in range(3):
            fn(quote, chunk)  # type: ignore[operator]
        return (time.perf_counter() - t0) / 3

    old, new = per_call(old_partial_ratio), per_call(partial_ratio)
    print(f"partial_ratio on {len(chunk)} chars: difflib {old * 1e3:.1f} ms, "
          f"rapidfuzz {new * 1e3:.2f} ms, {old / new:.0f}x")  # fmt: skip
    assert old / new > 10  # measured about 55x


def test_a_long_pair_is_scored_without_stalling_the_event_loop() -> None:
    """novelty on two 90k-character texts: the loop keeps ticking while it is scored."""
    text = DECL * 10
    rec = Record("p", {"text": text[::-1]}, {"originals": {"text": text}})
    verifier = novelty(field="text")

    async def main() -> tuple[int, float]:
        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.005)
        t0 = time.perf_counter()
        verdict = await verifier(rec, make_ctx())
        t1 = time.perf_counter()
        done.set()
        await task
        assert verdict.ok
        return sum(t0 < t < t1 for t in ticks), t1 - t0

    ticked, secs = asyncio.run(main())
    assert secs > 0.02 and ticked >= 5  # inline it ticked 0 times in 0.4 s


words = st.lists(st.sampled_from(["the", "quick", "brown", "fox", "jumps", "over", "a"]))


@settings(max_examples=80, deadline=None)
@given(words, words, words)
def test_scores_are_bounded_and_a_verbatim_quote_scores_one(
    pre: list[str], quote: list[str], post: list[str]
) -> None:
    q, h = " ".join(quote), " ".join(pre + quote + post)
    if q:
        assert partial_ratio(q, h) == 1.0
    other = " ".join(reversed(pre))
    for score in (partial_ratio(other, h), edit_ratio(other, h), edit_ratio(h, other)):
        assert 0.0 <= score <= 1.0
    assert edit_ratio(other, h) == edit_ratio(h, other)
    assert edit_ratio(other, h) >= old_edit_ratio(other, h) - 1e-9
