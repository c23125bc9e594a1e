"""Sandbox settings: per-job limits and per-pool settings, with defaults from
`verifiers/sandbox.yaml` (the built-in values below are the same numbers, used only when
that file is not reachable, e.g. synth installed without its content folders)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from synth.errors import ConfigError

BACKENDS = ("bwrap", "unsafe-local")

LIMITS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "wall_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "cpu_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "memory_mb": {"type": "integer", "minimum": 16, "maximum": 65536},
        "output_kb": {"type": "integer", "minimum": 1, "maximum": 1048576},
        "file_mb": {"type": "integer", "minimum": 1, "maximum": 65536},
        "nproc": {"type": "integer", "minimum": 1, "maximum": 4096},
        "nofile": {"type": "integer", "minimum": 16, "maximum": 65536},
    },
}

SETTINGS_SCHEMA: dict[str, Any] = {
    "backend": {"enum": list(BACKENDS)},
    "workers": {"type": "integer", "minimum": 1, "maximum": 256},
    "disk_mb": {"type": "integer", "minimum": 1, "maximum": 65536},
    "seccomp": {"type": "boolean"},
    "python": {"type": ["string", "null"]},
    "node": {"type": ["string", "null"]},
    "limits": LIMITS_SCHEMA,
}


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """What one job may use. Wall time is enforced by the fork server (no polling), CPU,
    memory, file size, processes and open files by rlimits, output by the server's cap."""

    wall_s: float = 10.0
    cpu_s: float = 5.0
    memory_mb: int = 1024
    output_kb: int = 1024
    file_mb: int = 32
    nproc: int = 32
    nofile: int = 256

    def merged(
        self, overrides: Mapping[str, Any] | None, *, file: str | None = None
    ) -> SandboxLimits:
        if not overrides:
            return self
        from synth.schema import check

        check(dict(overrides), LIMITS_SCHEMA, file=file, what="sandbox limits")
        return replace(self, **dict(overrides))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class SandboxSettings:
    """Per-pool settings. Frozen and hashable: equal settings share one pool."""

    backend: str = "bwrap"
    workers: int = 2
    disk_mb: int = 64
    seccomp: bool = True
    python: str | None = None  # interpreter inside the jail; default: this one's base
    node: str | None = None  # default: `node` on PATH
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def pool_key(self) -> tuple[Any, ...]:
        return (self.backend, self.workers, self.disk_mb, self.seccomp, self.python, self.node)


def default_file(base_dir: Path | None = None) -> Path | None:
    """`verifiers/sandbox.yaml` of the project (recipe root or working directory)."""
    from synth.content import resolve

    try:
        return resolve("verifiers", "sandbox", base_dir or Path.cwd())
    except ConfigError:
        here = Path(__file__).resolve().parents[2] / "verifiers" / "sandbox.yaml"
        return here if here.is_file() else None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    base_dir: Path | None = None,
    file: str | None = None,
) -> SandboxSettings:
    """Defaults from `verifiers/sandbox.yaml`, then `overrides` (a verifier's or step's
    config: `backend`, `workers`, `disk_mb`, `limits: {...}`), validated with good errors."""
    from synth.content import load_yaml

    merged: dict[str, Any] = {}
    path = default_file(base_dir)
    if path is not None:
        data = load_yaml(path) or {}
        merged.update({k: v for k, v in data.items() if k in SETTINGS_SCHEMA})
    base_limits = dict(merged.pop("limits", {}) or {})
    over = {k: v for k, v in (overrides or {}).items() if k in SETTINGS_SCHEMA}
    over_limits = dict(over.pop("limits", {}) or {})
    merged.update({k: v for k, v in over.items() if v is not None or k in ("python", "node")})
    from synth.schema import check

    schema = {"type": "object", "properties": SETTINGS_SCHEMA, "additionalProperties": False}
    check(merged, schema, file=file or (str(path) if path else None), what="sandbox settings")
    limits = SandboxLimits().merged(base_limits, file=str(path) if path else None)
    limits = limits.merged(over_limits, file=file)
    known = {f.name for f in fields(SandboxSettings)}
    return SandboxSettings(**{k: v for k, v in merged.items() if k in known}, limits=limits)
