"""The generic `prompt` step: rendering, output field, JSON + schema, samples, failures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synth.context import Context
from synth.errors import BudgetExceeded, ConfigError, LLMResponseError, LLMUnavailable
from synth.llm.client import client_for_run
from synth.records import Record
from synth.registry import lookup
from synth.streams import aiter_of
from synth.testing import ScriptedLLM, StubServer

ROOT = Path(__file__).resolve().parents[2]


def make(**config: Any) -> Any:
    return lookup("step", "prompt").factory(**config)


def records(n: int = 3) -> list[Record]:
    return [
        Record(f"r{i}", {"name": f"Widget {i}", "category": "tools"}, {"index": i})
        for i in range(n)
    ]


def run_step(step: Any, llm: Any, recs: list[Record] | None = None) -> tuple[list[Record], Context]:
    ctx = Context(seed=1, base_dir=ROOT, llm=llm)

    async def go() -> list[Record]:
        return [r async for r in step(aiter_of(recs if recs is not None else records()), ctx)]

    return asyncio.run(go()), ctx


def test_renders_each_record_and_writes_the_answer_to_the_output_field() -> None:
    llm = ScriptedLLM(lambda messages, **p: messages[-1]["content"].upper())
    out, _ = run_step(
        make(prompt="Describe {{ name }} ({{ category }}).", output_field="desc"), llm
    )
    assert [r.data["desc"] for r in out] == [f"DESCRIBE WIDGET {i} (TOOLS)." for i in range(3)]
    assert [r.id for r in out] == ["r0", "r1", "r2"]  # one sample: same record, grown
    assert all(r.data["name"].startswith("Widget") for r in out)  # input fields kept
    assert [c.messages[-1]["content"] for c in llm.calls][0] == "Describe Widget 0 (tools)."


def test_lineage_records_the_call_and_template_hash() -> None:
    llm = ScriptedLLM(lambda m, **p: "ok")
    out, _ = run_step(make(template="product-description"), llm)
    call = out[0].meta["llm_calls"][-1]
    assert call["model"] == "scripted" and len(call["template_hash"]) == 16
    assert llm.calls[0].params["template_hash"] == call["template_hash"]
    roles = [m["role"] for m in llm.calls[0].messages]
    assert roles == ["system", "user"]
    assert "Widget 0" in llm.calls[0].messages[1]["content"]


def test_system_option_replaces_the_system_message() -> None:
    llm = ScriptedLLM(lambda m, **p: "ok")
    run_step(make(template="product-description", system="Be terse about {{ category }}."), llm)
    msgs = llm.calls[0].messages
    assert msgs[0] == {"role": "system", "content": "Be terse about tools."}
    assert sum(m["role"] == "system" for m in msgs) == 1


def test_json_answers_are_parsed_and_validated() -> None:
    schema = {"type": "object", "required": ["price"], "properties": {"price": {"type": "number"}}}
    llm = ScriptedLLM(['```json\n{"price": 3.5}\n```', 'Sure! {"price": 2}', '{"price": 1}'])
    out, _ = run_step(
        make(prompt="Price {{ name }}", json=True, schema=schema, output_field="p"), llm
    )
    assert [r.data["p"] for r in out] == [{"price": 3.5}, {"price": 2}, {"price": 1}]
    assert llm.calls[0].schema == schema


def test_samples_make_k_children_with_distinct_sample_indexes() -> None:
    llm = ScriptedLLM(lambda m, **p: f"sample {p['n_index']}")
    out, _ = run_step(make(prompt="Say {{ name }}", samples=3), llm, records(2))
    assert len(out) == 6
    assert len({r.id for r in out}) == 6
    assert [r.data["completion"] for r in out[:3]] == ["sample 0", "sample 1", "sample 2"]
    assert all(r.meta["parents"] == ["r0"] for r in out[:3])
    assert sorted(c.params["n_index"] for c in llm.calls) == [0, 0, 1, 1, 2, 2]


def test_unknown_variable_is_a_config_error_naming_it_before_any_call() -> None:
    llm = ScriptedLLM(lambda m, **p: "never")
    with pytest.raises(ConfigError) as err:
        run_step(make(prompt="Describe {{ nmae }}"), llm)
    assert "nmae" in str(err.value) and "name" in str(err.value)
    assert llm.calls == []


def test_bad_config_is_rejected_at_build_time() -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        make(prompt="a", template="b")
    with pytest.raises(ConfigError, match="syntax"):
        make(prompt="{% if %}")


def test_a_failed_call_marks_the_record_for_rejection_with_why() -> None:
    llm = ScriptedLLM(["first", LLMResponseError("garbage"), "third"])
    out, ctx = run_step(make(prompt="{{ name }}"), llm)
    assert [r.id for r in out] == ["r0", "r1", "r2"]
    assert [bool(r.meta.get("error")) for r in out] == [False, True, False]
    assert out[1].meta["error"]["reason"] == "prompt_llm_response_error"
    assert "garbage" in out[1].meta["error"]["detail"] and "completion" not in out[1].data
    assert ctx.stats["prompt_failed_llm_response_error"] == 1


def test_a_failed_sample_is_its_own_rejected_child_and_failed_records_pass_untouched() -> None:
    llm = ScriptedLLM(["a", LLMResponseError("unusable answer"), "c"])
    out, _ = run_step(make(prompt="{{ name }}", samples=3), llm, records(1))
    assert [r.meta.get("sample") for r in out] == [0, 1, 2] and len({r.id for r in out}) == 3
    assert [bool(r.meta.get("error")) for r in out] == [False, True, False]
    assert out[1].meta["error"]["reason"] == "prompt_llm_response_error"
    # A second prompt step asks nothing for the failed child and keeps its error.
    again = ScriptedLLM(lambda m, **p: "more")
    second, _ = run_step(make(prompt="{{ name }}", output_field="more"), again, out)
    assert len(again.calls) == 2 and second[1] == out[1]


def test_budget_exceeded_is_not_swallowed() -> None:
    llm = ScriptedLLM([BudgetExceeded("cap", reason="max_tokens")])
    with pytest.raises(BudgetExceeded):
        run_step(make(prompt="{{ name }}"), llm)


def test_an_endpoint_that_failed_every_retry_stops_the_step_instead_of_a_reject() -> None:
    llm = ScriptedLLM(["a", LLMUnavailable("openai/x: the endpoint failed 6 attempts in a row")])
    with pytest.raises(LLMUnavailable):
        run_step(make(prompt="{{ name }}"), llm, records(2))


def test_through_the_real_client_samples_are_cached_separately(tmp_path: Path) -> None:
    """Samples differ in the cache key (n_index), so a re-run replays all k from cache."""

    async def go() -> tuple[list[Record], list[Record], dict[str, Any]]:
        async with StubServer() as stub:
            outs = []
            for _ in range(2):
                client = client_for_run(
                    model="openai/stub-model",
                    state_dir=tmp_path,
                    litellm_params={"api_base": stub.url, "api_key": "sk-test"},
                )
                ctx = Context(seed=1, base_dir=ROOT, llm=client)
                step = make(prompt="Say {{ name }}", samples=2)
                outs.append([r async for r in step(aiter_of(records(2)), ctx)])
                await client.aclose()
            return outs[0], outs[1], stub.stats.as_dict()

    first, second, stats = asyncio.run(go())
    assert stats["requests"] == 4  # 2 records x 2 samples, the second run entirely cached
    assert [r.data for r in first] == [r.data for r in second]
    assert first[0].data["completion"] == "echo: Say Widget 0"
    assert all(c["cached"] for r in second for c in r.meta["llm_calls"])


def stub_recipe(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """Four tickets read from a file through a prompt step: the run ends when the input
    does (`exhausted`), so no call is left in flight and every count is exact."""
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        "".join(f'{{"ticket_id": "T{i}", "subject": "printer {i} is on fire"}}\n' for i in range(4))
    )
    return {
        "name": "stub-prompts",
        "model": "openai/stub-model",
        "concurrency": 2,
        "steps": [
            {"use": "read", "path": str(tickets)},
            {"use": "prompt", "prompt": "Summarize {{ ticket_id }}: {{ subject }}", **extra},
        ],
        "limits": {"default": {"max_attempts": 2}},
    }


def run_against(stub_kw: dict[str, Any], recipe: dict[str, Any], tmp_path: Path, mp: Any) -> Any:
    import synth

    mp.setenv("OPENAI_API_KEY", "sk-test")
    mp.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))

    async def go() -> tuple[Any, dict[str, Any]]:
        async with StubServer(**stub_kw) as stub:
            mp.setenv("OPENAI_API_BASE", stub.url)
            result = await synth.run(recipe, n=5, out=tmp_path / "out")
            return result, stub.stats.as_dict()

    return asyncio.run(go())


def rejects_of(result: Any) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in result.rejects_path.read_text().splitlines()]


@pytest.mark.slow  # litellm import
def test_a_500_storm_stops_the_run_without_rejecting_a_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import synth

    recipe = stub_recipe(tmp_path)
    with pytest.raises(synth.LLMTransientError, match="failed 2 attempts in a row") as err:
        run_against({"error_rate": 1.0}, recipe, tmp_path, monkeypatch)
    assert "run the same command again to resume" in str(err.value)
    # The endpoint, not the records, failed: nothing was rejected, so a resume makes them.
    assert (tmp_path / "out" / "rejects.jsonl").read_text() == ""
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["counts"]["rejected"] == 0 and manifest["status"] == "running"


@pytest.mark.slow  # litellm import
def test_json_that_stays_invalid_lands_in_rejects_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = stub_recipe(tmp_path, json=True)
    result, stats = run_against({"answer": lambda r: "no JSON here"}, recipe, tmp_path, monkeypatch)
    assert result.kept == 0 and result.generated == 4
    rejects = rejects_of(result)
    assert [r["meta"]["reject_reason"] for r in rejects] == ["prompt_llm_response_error"] * 4
    assert "after 2 re-asks" in rejects[0]["meta"]["verdicts"][-1]["detail"]
    assert result.manifest["counts"]["rejected_by_reason"] == {"prompt_llm_response_error": 4}
    assert result.manifest["llm"]["failure_reasons"] == {"invalid_json": 4}
    assert stats["requests"] == 12  # each record: the ask and 2 re-asks
