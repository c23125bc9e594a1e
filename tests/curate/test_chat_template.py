"""`--format text --chat-template`: each conversation rendered by the model's own Jinja
template, in a sandbox, exactly as the model will see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from publish_fixtures import write_run

from synth.cli import main
from synth.curate.chat_template import load_chat_template
from synth.errors import ConfigError

CHATML = (
    "{{ bos_token }}{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}"
)


def _config(folder: Path, template: str | list, **tokens: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": template, **tokens}), encoding="utf-8")
    return path


def test_text_export_renders_the_models_chatml_template_exactly(tmp_path: Path) -> None:
    model = tmp_path / "model"
    _config(model, CHATML, bos_token={"content": "<s>", "lstrip": False}, eos_token="</s>")
    run = write_run(tmp_path / "run", [("Hi?", "Hello!"), ("2+2?", "4")])
    out = tmp_path / "text.jsonl"
    assert (
        main(
            [
                "-q",
                "export",
                str(run),
                "--format",
                "text",
                "--chat-template",
                str(model),
                "--system",
                "Be brief.",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {
        "text": "<s><|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi?<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
    }
    assert rows[1]["text"].endswith("<|im_start|>assistant\n4<|im_end|>\n")


def test_eos_token_and_named_templates(tmp_path: Path) -> None:
    cfg = _config(
        tmp_path,
        [{"name": "tool_use", "template": "x"}, {"name": "default", "template": NO_SYSTEM}],
        eos_token="</s>",
    )
    t = load_chat_template(cfg)
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert t.render(msgs) == "[user] a</s>[assistant] b</s>"


def test_raise_exception_becomes_a_config_error_naming_the_template(tmp_path: Path) -> None:
    cfg = _config(tmp_path, NO_SYSTEM)
    with pytest.raises(ConfigError, match="refused the conversation: System role not supported"):
        load_chat_template(cfg).render([{"role": "system", "content": "s"}])


def test_the_template_runs_sandboxed(tmp_path: Path) -> None:
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(ConfigError, match="chat template failed"):
        load_chat_template(_config(tmp_path / "a", evil)).render([])
    mutate = "{% set _ = messages.append({'role': 'x'}) %}{{ messages | length }}"
    with pytest.raises(ConfigError, match="chat template failed"):
        load_chat_template(_config(tmp_path / "b", mutate)).render([])


def test_missing_or_templateless_configs_are_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="has no chat template"):
        load_chat_template(_config(tmp_path / "base", None))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not valid Jinja"):
        load_chat_template(_config(tmp_path / "bad", "{% for %}"))
    run = write_run(tmp_path / "run", [("q", "a")])
    assert main(["export", str(run), "--format", "text"]) == 2
    err = capsys.readouterr().err
    assert "needs a chat template" in err and "--chat-template" in err
    assert (
        main(["export", str(run), "--format", "text", "--chat-template", str(tmp_path / "x")]) == 2
    )
    assert "chat template not found" in capsys.readouterr().err


def test_chat_template_jinja_file_beside_the_config_wins(tmp_path: Path) -> None:
    _config(tmp_path, "old", bos_token="<B>")
    (tmp_path / "chat_template.jinja").write_text("{{ bos_token }}{{ messages[0]['content'] }}")
    assert load_chat_template(tmp_path).render([{"role": "user", "content": "hi"}]) == "<B>hi"


def test_trl_messages_and_prompt_completion(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [("Hi?", "Hello!")])
    for fmt, expected in (
        (
            "messages",
            {
                "messages": [
                    {"role": "system", "content": "S"},
                    {"role": "user", "content": "Hi?"},
                    {"role": "assistant", "content": "Hello!"},
                ]
            },
        ),
        ("prompt-completion", {"prompt": "S\n\nHi?", "completion": "Hello!"}),
    ):
        out = tmp_path / f"{fmt}.jsonl"
        assert (
            main(["-q", "export", str(run), "--format", fmt, "--system", "S", "--out", str(out)])
            == 0
        )
        assert json.loads(out.read_text()) == expected
