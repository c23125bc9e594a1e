"""synth: synthetic training data from recipes, gated by verifier chains.

`await synth.run(recipe, n=..., seed=..., out=...)` writes a resumable run directory;
`synth.stream(recipe, n=..., seed=...)` yields the records that pass. Everything a plugin
or a script needs is re-exported here; the submodules are the implementation.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from .api import RunResult, resolve, run, stream
from .chain import Chain, Named, Verdict
from .context import Context, derive_seed, rng_for
from .errors import (
    BudgetExceeded,
    ConfigError,
    LLMError,
    LLMResponseError,
    LLMTransientError,
    SandboxError,
    SinkError,
    SynthError,
)
from .recipe import Recipe
from .recipe import load as load_recipe
from .records import Record, child_id, content_hash, read_jsonl, record_id, write_jsonl
from .registry import step, verifier

try:
    __version__ = _version("synth")
except _PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

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
