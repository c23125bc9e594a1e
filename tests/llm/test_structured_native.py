"""`structured: native` in a recipe's `limits:`: a model litellm's map knows nothing about
(a vLLM or Ollama deployment) still gets the JSON Schema as `response_format`, which is
what makes such a server decode under the schema. Checked on what the stub received."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synth.errors import ConfigError
from synth.llm.client import client_for_run
from synth.llm.http import TRANSPORTS
from synth.runner.recipe import from_dict
from synth.testing import StubServer

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = {
    "type": "object",
    "required": ["name", "price", "in_stock"],
    "properties": {
        "name": {"type": "string"},
        "price": {"type": "number"},
        "in_stock": {"type": "boolean"},
    },
}
ANSWER = '{"name": "lamp", "price": 12.5, "in_stock": true}'


def ask(model: str, table: dict[str, Any] | None, transport: str, tmp: Path) -> dict[str, Any]:
    """The request body the stub received for one structured call."""

    async def go() -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def answer(request: dict[str, Any]) -> str:
            seen.append(request)
            return ANSWER

        async with StubServer(answer=answer) as stub:
            limits = {**(table or {}), "default": {"transport": transport}}
            client = client_for_run(
                model=model,
                state_dir=tmp,
                limits_table=limits,
                litellm_params={"api_base": stub.url, "api_key": "sk-test"},
            )
            try:
                out = await client.complete([{"role": "user", "content": "a lamp"}], schema=SCHEMA)
            finally:
                await client.aclose()
            assert out.parsed == {"name": "lamp", "price": 12.5, "in_stock": True}
            return seen[0]

    return asyncio.run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("model", ["hosted_vllm/Qwen/Qwen2.5-7B-Instruct", "openai/my-vllm"])
def test_structured_native_sends_the_schema_to_a_model_litellm_does_not_know(
    model: str, transport: str, tmp_path: Path
) -> None:
    sent = ask(model, {model: {"structured": "native"}}, transport, tmp_path)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_without_it_such_a_model_is_told_the_schema_in_the_prompt_only(
    transport: str, tmp_path: Path
) -> None:
    sent = ask("openai/my-vllm", None, transport, tmp_path)
    assert "response_format" not in sent
    assert '"in_stock"' in sent["messages"][0]["content"]  # the schema, as an instruction


def test_structured_prompt_keeps_the_schema_out_of_a_known_model_s_request(tmp_path: Path) -> None:
    """For a server that rejects the field although the model name says it takes it."""
    sent = ask(
        "openai/gpt-4o-mini", {"openai/gpt-4o-mini": {"structured": "prompt"}}, "http", tmp_path
    )
    assert "response_format" not in sent


def test_an_unknown_structured_value_names_its_path() -> None:
    recipe = {
        "model": "openai/my-vllm",
        "steps": [{"use": "faker", "template": "support-tickets"}],
        "limits": {"openai/my-vllm": {"structured": "grammar"}},
    }
    with pytest.raises(ConfigError) as err:
        from_dict(recipe, base_dir=ROOT)
    assert "limits" in str(err.value) and "structured" in str(err.value)
