"""Judges are measured before they gate: a judge that answers at random, always the same,
or by position is refused before it judges a record; one that answers like the labels
gates; the measurement is kept per (judge, model, prompt hash) and reused."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from text_fixtures import ROOT, make_ctx, text_of

from synth import api
from synth.cli import main as cli
from synth.errors import ConfigError
from synth.judges.calibration import (
    Answer,
    Probe,
    Report,
    calibrate,
    measure,
    probe_of,
)
from synth.runner.engine import Outcome, RunLimits, Tally, outcomes
from synth.runner.recipe import Recipe, from_dict
from synth.testing import ScriptedLLM, StubServer

SETS = ROOT / "verifiers" / "calibration"
_DATA = re.compile(r"<data>\n(.*)\n</data>", re.DOTALL)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def labels(name: str) -> dict[str, bool]:
    """The calibration set's verdicts, by the data the judge is shown."""
    out = {}
    for line in (SETS / f"{name}.jsonl").read_text().splitlines():
        item = json.loads(line)
        out[json.dumps(item["data"], sort_keys=True)] = bool(item["keep"])
    return out


def shown(messages: list[dict[str, Any]]) -> dict[str, Any]:
    found = _DATA.search(text_of(messages))
    assert found, "the judge is shown its data between <data> tags"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def honest_yes_no(name: str) -> Callable[..., str]:
    """A judge that gets every calibration item right (and says yes to anything else)."""
    known = labels(name)

    def answer(messages: list[dict[str, Any]], **params: Any) -> str:
        keep = known.get(json.dumps(shown(messages), sort_keys=True), True)
        return "yes" if keep else "no"

    return answer


def random_yes_no(seed: int = 3) -> Callable[..., str]:
    rng = random.Random(seed)
    return lambda messages, **params: rng.choice(["yes", "no"])


def ask_llm_recipe(**overrides: Any) -> Recipe:
    return from_dict(
        {
            "steps": [{"use": "faker", "template": "support-tickets"}],
            "verify": [{"use": "ask-llm", **overrides}] if overrides else ["ask-llm"],
        },
        base_dir=ROOT,
    )


def run(recipe: Recipe, llm: Any, n: int = 2) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """The engine's own loop, with the scripted judge as the run's model."""
    reports: list[dict[str, Any]] = []

    async def go() -> list[Outcome]:
        limits = RunLimits(n=n, max_attempts=10)
        stream = outcomes(recipe, make_ctx(llm), limits, Tally(), on_calibrated=reports.extend)
        return [o async for o in stream]

    return asyncio.run(go()), reports


# --------------------------------------------------------------------------- the run's gate


def test_a_judge_that_answers_at_random_is_refused_before_it_judges_a_record() -> None:
    llm = ScriptedLLM(random_yes_no())
    with pytest.raises(ConfigError) as err:
        run(ask_llm_recipe(), llm)
    message = str(err.value)
    assert "failed its calibration" in message and "ask-llm" in message
    assert "allow_uncalibrated: true" in message and "synth judge check ask-llm" in message
    assert re.search(r"accuracy 0\.\d+ on 16 items", message)
    assert len(llm.calls) == 16  # the calibration set, and not one record


def test_a_judge_that_always_says_yes_is_refused_and_flagged_as_constant() -> None:
    llm = ScriptedLLM(lambda messages, **params: "yes")
    with pytest.raises(ConfigError, match="the same score or verdict for every item"):
        run(ask_llm_recipe(), llm)


def test_a_judge_that_agrees_with_the_labels_gates_the_run() -> None:
    llm = ScriptedLLM(honest_yes_no("ask-llm"))
    kept, reports = run(ask_llm_recipe(), llm, n=2)
    assert [o.ok for o in kept].count(True) == 2
    [report] = reports
    assert report["judge"] == "ask-llm" and report["model"] == "scripted"
    assert report["passed"] and report["accuracy"] == 1.0 and report["correlation"] == 1.0
    assert not report["constant"]


def test_allow_uncalibrated_gates_without_measuring_and_says_so() -> None:
    llm = ScriptedLLM(lambda messages, **params: "yes")
    kept, [report] = run(ask_llm_recipe(allow_uncalibrated=True), llm, n=1)
    assert kept and kept[-1].ok
    assert report == {"judge": "ask-llm", "model": "scripted", "uncalibrated": True}
    known = labels("ask-llm")  # no call was about a calibration item
    assert not [c for c in llm.calls if json.dumps(shown(c.messages), sort_keys=True) in known]


def test_a_registered_judge_used_inline_is_measured_on_the_shipped_set() -> None:
    recipe = {
        "steps": [{"use": "faker", "template": "support-tickets"}],
        "verify": [{"use": "ask_llm"}],
    }
    with pytest.raises(ConfigError, match="failed its calibration"):
        run(from_dict(recipe, base_dir=ROOT), ScriptedLLM(random_yes_no()))


def test_a_judge_without_a_calibration_set_is_not_allowed_to_gate() -> None:
    judge = {
        "use": "judge",
        "task": "Is it a ticket?",
        "criteria": [{"name": "ticket", "description": "a support ticket?"}],
    }
    recipe = {"steps": [{"use": "faker", "template": "support-tickets"}], "verify": [judge]}
    llm = ScriptedLLM(lambda messages, **params: {"ticket": 5, "reason": "ok"})
    with pytest.raises(ConfigError) as err:
        run(from_dict(recipe, base_dir=ROOT), llm)
    assert "verifiers/calibration/judge.jsonl" in str(err.value)
    assert llm.calls == []
    judge["allow_uncalibrated"] = True
    kept, [report] = run(from_dict(recipe, base_dir=ROOT), llm, n=1)
    assert kept[-1].ok and report["uncalibrated"] is True


def test_the_measurement_is_kept_per_judge_model_and_prompt_hash(state_dir: Path) -> None:
    llm = ScriptedLLM(honest_yes_no("ask-llm"))
    run(ask_llm_recipe(), llm, n=1)
    calls = len(llm.calls)
    _, [again] = run(ask_llm_recipe(), llm, n=1)
    assert again["cached"] is True
    assert len(llm.calls) - calls <= 2  # the records only: no calibration call
    assert (state_dir / "calibration.json").is_file()
    # another threshold is another judge: measured again
    before = len(llm.calls)
    _, [other] = run(ask_llm_recipe(threshold=0.6), llm, n=1)
    assert other["cached"] is False and other["prompt_hash"] != again["prompt_hash"]
    assert len(llm.calls) - before >= 16


# --------------------------------------------------------------------------- rubric, pairwise


def build(name: str, **config: Any) -> tuple[str, Probe]:
    recipe = from_dict(
        {"steps": [{"use": "faker", "template": "support-tickets"}], "verify": [name]},
        base_dir=ROOT,
    )
    _, chain = recipe.instantiate()
    [named] = chain.verifiers
    probe = probe_of(named.fn)
    assert probe is not None
    return named.name, probe


def check_judge(name: str, llm: Any) -> Report:
    judge, probe = build(name)
    report = asyncio.run(calibrate(make_ctx(llm), judge, probe, None))
    assert report is not None
    return report


@pytest.mark.parametrize("name", ["instruction-quality", "paraphrase-meaning", "qa-quality"])
def test_a_rubric_judge_is_measured_on_its_own_set(name: str) -> None:
    known = labels(name)
    definition = yaml.safe_load((ROOT / "verifiers" / f"{name}.yaml").read_text())
    criteria = [c["name"] for c in definition["criteria"]]

    def honest(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        score = 5 if known[json.dumps(shown(messages), sort_keys=True)] else 1
        return {**dict.fromkeys(criteria, score), "reason": "as labelled"}

    good = check_judge(name, ScriptedLLM(honest))
    assert good.passed and good.accuracy == 1.0 and good.correlation == 1.0
    # another model (a result is kept per model): one that gives everything a 4
    fours = {**dict.fromkeys(criteria, 4), "reason": "fine"}
    flat = check_judge(name, ScriptedLLM(lambda m, **p: fours, model="flat"))
    assert not flat.passed and flat.constant and flat.accuracy == 0.5


def pairwise_judge(position_biased: bool) -> Callable[..., dict[str, Any]]:
    chosen = {json.loads(x)["chosen"] for x in (SETS / "pairwise.jsonl").read_text().splitlines()}

    def answer(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        data = shown(messages)
        if position_biased:
            return {"winner": "A", "reason": "A is first"}
        return {"winner": "A" if data["response_A"] in chosen else "B", "reason": "better"}

    return answer


def test_a_position_biased_pairwise_judge_is_refused_with_its_flips_counted() -> None:
    biased = check_judge("pairwise", ScriptedLLM(pairwise_judge(position_biased=True)))
    assert not biased.passed and biased.accuracy == 0.0
    assert biased.position_flips == biased.items == 12
    assert "12 of 12 verdicts flipped by swapping" in biased.summary()
    fair = check_judge("pairwise", ScriptedLLM(pairwise_judge(False), model="fair"))
    assert fair.passed and fair.accuracy == 1.0 and fair.position_flips == 0


# --------------------------------------------------------------------------- the measure


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=4, max_size=20))
def test_accuracy_is_the_share_of_answers_matching_the_labels(
    pairs: list[tuple[bool, bool]],
) -> None:
    items = [{"data": {"i": i}, "keep": label} for i, (label, _) in enumerate(pairs)]
    answers = {i: said for i, (_, said) in enumerate(pairs)}

    async def ask(ctx: Any, item: Any, model: Any) -> Answer:
        said = answers[item["data"]["i"]]
        return Answer(said, 1.0 if said else 0.0)

    probe = Probe("yes_no", ask, lambda ctx: "fixed", min_agreement=0.75)
    report = asyncio.run(measure(make_ctx(), "j", probe, items, "m"))
    hits = sum(label == said for label, said in pairs)
    assert report.accuracy == round(hits / len(pairs), 4)
    assert report.constant == (len({said for _, said in pairs}) == 1)
    assert report.passed == (report.accuracy >= 0.75 and not report.constant)


# --------------------------------------------------------------------------- CLI and manifest


@contextmanager
def stub_in_thread(answer: Callable[[dict[str, Any]], str]) -> Iterator[str]:
    """The loopback stub on its own loop, for code that runs `asyncio.run` itself (the CLI)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    url: list[str] = []

    async def serve() -> None:
        async with StubServer(answer=answer) as stub:
            url.append(stub.url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def stub_yes_no(honest: bool) -> Callable[[dict[str, Any]], str]:
    known = labels("ask-llm")

    def answer(request: dict[str, Any]) -> str:
        if not honest:
            return "yes"
        data = shown(request["messages"])  # type: ignore[arg-type]
        return "yes" if known.get(json.dumps(data, sort_keys=True), True) else "no"

    return answer


def test_synth_judge_check_reports_agreement_and_exits_by_the_verdict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    with stub_in_thread(stub_yes_no(honest=True)) as url:
        monkeypatch.setenv("OPENAI_API_BASE", url)
        assert cli(["judge", "check", "ask-llm", "--model", "openai/stub-judge"]) == 0
    out = capsys.readouterr().out
    assert "ask-llm with openai/stub-judge: passes" in out
    # the stub gives logprobs, so P(yes) is graded: a correlation near but below 1
    assert re.search(r"accuracy 1\.00 on 16 items, correlation \+0\.9\d", out), out
    with stub_in_thread(stub_yes_no(honest=False)) as url:
        monkeypatch.setenv("OPENAI_API_BASE", url)
        assert cli(["judge", "check", "ask-llm", "--model", "openai/stub-yes-man"]) == 1
    out = capsys.readouterr().out
    assert "FAILS" in out and "the same score or verdict for every item" in out
    assert cli(["judge", "check", "no-duplicates"]) == 2
    assert "not an LLM judge" in capsys.readouterr().err


def test_the_manifest_records_each_judge_s_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused first; allowed once the user opts in, and the manifest says how it scored."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")
    recipe: dict[str, Any] = {
        "model": "openai/stub-yes-man",
        "steps": [{"use": "faker", "template": "support-tickets"}],
        "verify": [{"use": "ask-llm"}],
    }

    async def main() -> Any:
        async with StubServer(answer=stub_yes_no(honest=False)) as stub:
            monkeypatch.setenv("OPENAI_API_BASE", stub.url)
            with pytest.raises(ConfigError, match="failed its calibration"):
                await api.run(from_dict(recipe, base_dir=ROOT), n=2, out=tmp_path / "refused")
            recipe["verify"][0]["allow_uncalibrated"] = True
            return await api.run(from_dict(recipe, base_dir=ROOT), n=2, out=tmp_path / "out")

    result = asyncio.run(main())
    assert result.kept == 2
    [entry] = result.manifest["calibration"]
    assert entry["judge"] == "ask-llm" and entry["model"] == "openai/stub-yes-man"
    assert entry["constant"] is True and entry["passed"] is False and entry["accuracy"] == 0.5
    assert entry["allowed_uncalibrated"] is True and entry["cached"] is True
