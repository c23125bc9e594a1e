"""Registers the built-in steps and verifiers the way a plugin would: by importing every
module of `synth.steps` and `synth.verifiers`. A module there must keep heavy imports
(litellm, pyarrow, the sandbox) inside its functions so that this stays fast."""

import importlib
import pkgutil

from synth import steps, verifiers

for _pkg in (steps, verifiers):
    for _info in pkgutil.iter_modules(_pkg.__path__):
        if not _info.name.startswith("_"):
            importlib.import_module(f"{_pkg.__name__}.{_info.name}")
