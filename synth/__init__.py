"""synth: synthetic training data from recipes, gated by verifier chains.

`await synth.run(recipe, n=..., seed=..., out=...)` writes a resumable run directory;
`synth.stream(recipe, n=..., seed=...)` yields the records that pass. Everything a plugin
or a script needs is re-exported here; the submodules are the implementation.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from synth.chain import Chain, Named, Verdict
from synth.context import Context, derive_seed, rng_for
from synth.errors import (
    BudgetExceeded,
    ConfigError,
    LLMError,
    LLMResponseError,
    LLMTransientError,
    SandboxError,
    SinkError,
    SynthError,
)
from synth.records import Record, child_id, content_hash, read_jsonl, record_id, write_jsonl
from synth.registry import step, verifier

if _TYPE_CHECKING:
    from synth.api import RunResult, resolve, run, stream
    from synth.runner.recipe import Recipe
    from synth.runner.recipe import load as load_recipe

# The runner and the recipe loader pull in jsonschema, yaml and jinja2: load them on first
# use so that `synth --help` and plugins importing `synth.step` start fast.
_LAZY = {
    "RunResult": ("api", "RunResult"),
    "resolve": ("api", "resolve"),
    "run": ("api", "run"),
    "stream": ("api", "stream"),
    "Recipe": ("runner.recipe", "Recipe"),
    "load_recipe": ("runner.recipe", "load"),
}


def __getattr__(name: str) -> _Any:
    if name == "__version__":
        from synth.runner.rundir import synth_version

        return synth_version()
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BudgetExceeded",
    "Chain",
    "ConfigError",
    "Context",
    "LLMError",
    "LLMResponseError",
    "LLMTransientError",
    "Named",
    "Recipe",
    "Record",
    "RunResult",
    "SandboxError",
    "SinkError",
    "SynthError",
    "Verdict",
    "__version__",
    "child_id",
    "content_hash",
    "derive_seed",
    "load_recipe",
    "read_jsonl",
    "record_id",
    "resolve",
    "rng_for",
    "run",
    "step",
    "stream",
    "verifier",
    "write_jsonl",
]
