"""Loading a recipe: YAML -> settings substitution -> JSON Schema -> registry lookups.

Everything a user can get wrong is caught here, before a run directory exists, and
reported as file + JSON path + expected + found + fix. The result is a frozen `Recipe`
holding specs, not live step objects: `instantiate()` builds fresh steps and a fresh chain
for every run, so state a verifier keeps (a duplicate filter's seen-set) never leaks from
one run into the next."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synth import content, registry, schema
from synth.chain import Chain, Named
from synth.context import Context
from synth.errors import ConfigError, SynthError
from synth.records import Record, content_hash
from synth.runner import judge_fit

StepFn = Callable[[AsyncIterator[Record], Context], AsyncIterator[Record]]

# Keys that change how a run is carried out but not which records it produces: they stay
# out of the recipe hash, so raising a budget, the concurrency or a model's rate limits
# (`limits:`) resumes the same run; a `license:` only labels it. Keeping a trace of the
# model calls (`trace:`) changes what is written beside the records, never the records.
HASH_EXCLUDES = frozenset(
    {"description", "license", "budget", "concurrency", "limits", "mix", "monitor", "trace"}
)
DEFAULT_CONCURRENCY = 8  # records in flight for a recipe that names no model

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REF = re.compile(r"\$(\$)?\{(" + _NAME + r")\}")
_WHOLE = re.compile(r"\$\{(" + _NAME + r")\}")
_NAMED_VERIFIER = {
    "type": "object",
    "required": ["use"],
    "properties": {"use": {"type": "string", "minLength": 1}, "description": {"type": "string"}},
}


@dataclass(frozen=True, slots=True)
class Spec:
    """One configured step or verifier: what to build, and where it came from (for errors)."""

    use: str
    name: str  # verdicts and stats report under this name
    config: dict[str, Any]
    entry: registry.Entry
    file: str
    path: str

    def build(self) -> Any:
        try:
            return self.entry.factory(**self.config)
        except ConfigError as exc:
            if exc.file is None:  # the factory knew what was wrong but not where
                exc = ConfigError(
                    exc.message,
                    file=self.file,
                    path=exc.path or self.path,
                    expected=exc.expected,
                    found=exc.found,
                    fix=exc.fix,
                )
            raise exc from None
        except SynthError:
            raise
        except (TypeError, ValueError) as exc:  # an argument it does not take, a bad value
            raise ConfigError(
                f"{self.use!r} rejected its configuration: {type(exc).__name__}: {exc}",
                file=self.file,
                path=self.path,
                expected=f"a configuration {self.use!r} accepts",
                found=self.config,
                fix=f"see `synth list` and the docs of {self.use!r}",
            ) from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class RunBudget:
    """When a run stops short of `n`. All limits count over the whole run, across resumes."""

    max_attempts: int | None = None
    max_seconds: float | None = None
    max_cost_usd: float | None = None
    max_tokens: int | None = None

    def attempts_for(self, n: int) -> int:
        """Default: room for a 90% rejection rate plus slack for tiny runs."""
        return self.max_attempts if self.max_attempts is not None else 10 * n + 100


@dataclass(frozen=True, kw_only=True, eq=False)
class Recipe:
    name: str
    file: Path | None
    base_dir: Path
    hash: str
    steps: tuple[Spec, ...]
    chain: tuple[Spec, ...]
    budget: RunBudget
    model: str | None
    concurrency: int
    settings: dict[str, Any]
    raw: dict[str, Any]  # as written
    resolved: dict[str, Any]  # settings substituted, named verifiers inlined (what is hashed)
    overrides: dict[str, Any] = field(default_factory=dict)  # the --set values it was loaded with
    needs_llm: bool = False
    trace: bool = True  # write every model call to traces.jsonl in the run directory
    # The instances built while validating, handed to the first run instead of building
    # everything twice (template compilation is not free).
    _prebuilt: list[tuple[list[StepFn], Chain]] = field(
        default_factory=list, repr=False, compare=False
    )

    @property
    def models(self) -> frozenset[str]:
        """Every model the run may call: the recipe's, and any a step or verifier names
        (`model:`, or a judge panel's `models:`)."""
        found = {self.model} if self.model else set()
        for spec in (*self.steps, *self.chain):
            found |= _models_in(spec.config)
        return frozenset(found)

    def instantiate(self) -> tuple[list[StepFn], Chain]:
        """Fresh step functions and a fresh verifier chain for one run."""
        if self._prebuilt:
            return self._prebuilt.pop()
        # Factories get only their config; content they name resolves from the recipe's root.
        with content.building_from(self.base_dir):
            steps = [s.build() for s in self.steps]
            chain = Chain(tuple(Named(v.name, v.build()) for v in self.chain))
        return steps, chain

    @property
    def mix(self) -> dict[str, Any] | None:
        return self.resolved.get("mix")

    @property
    def monitor(self) -> dict[str, Any] | None:
        return self.resolved.get("monitor")


def load(
    ref: str | Path,
    *,
    settings: dict[str, Any] | None = None,
    model: str | None = None,
) -> Recipe:
    """Load and fully validate a recipe file (a path, or a name in `recipes/`)."""
    file = find(ref)
    raw = content.load_yaml(file)
    return from_dict(raw, file=file, settings=settings, model=model)


def find(ref: str | Path) -> Path:
    path = Path(ref)
    if path.is_file() or path.suffix or "/" in str(ref):
        return path  # load_yaml reports a missing file with its path
    return content.resolve("recipes", str(ref), Path.cwd())


def from_dict(
    raw: Any,
    *,
    file: Path | None = None,
    base_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
    model: str | None = None,
) -> Recipe:
    """Validate a recipe given as a dict (a parsed file, or one built in Python)."""
    where = str(file) if file else "<recipe>"
    base = base_dir or (content.project_root(file) if file else Path.cwd())
    if not isinstance(raw, dict):
        raise ConfigError(
            "a recipe must be a mapping",
            file=where,
            path="$",
            expected="a YAML mapping with at least `steps:`",
            found=raw,
            fix="start from one of the files in recipes/",
        )
    defaults = raw.get("settings") or {}
    if not isinstance(defaults, dict):
        schema.check(raw, schema.packaged("recipe.json"), file=where, what="recipe")
    overrides = dict(settings or {})
    used: set[str] = set()
    merged = resolve_settings({**defaults, **overrides}, file=where, used=used)
    body = {k: v for k, v in raw.items() if k != "settings"}
    resolved: dict[str, Any] = substitute(body, merged, file=where, path="$", used=used)
    unused = sorted(set(overrides) - used - set(defaults))
    if unused:
        name = unused[0]
        if name == "input":
            raise ConfigError(
                "this recipe reads no input file",
                file=where,
                path="--input",
                expected="a recipe whose source reads `${input}`",
                found=overrides["input"],
                fix="drop --input, or use a recipe that reads files (`use: read`)",
            )
        raise ConfigError(
            f"--set {name}: this recipe has no setting {name!r}",
            file=where,
            path="$.settings",
            expected=f"one of: {', '.join(sorted(defaults)) or '(the recipe has no settings)'}",
            found=name,
            fix=f"check the spelling, or reference ${{{name}}} in the recipe",
        )
    if merged:
        resolved["settings"] = merged
    if model is not None:
        resolved["model"] = model
    schema.check(resolved, schema.packaged("recipe.json"), file=where, what="recipe")
    if resolved.get("limits"):  # the LLM layer loads only for recipes that call a model
        from synth.llm import limits as llmlimits

        llmlimits.check(resolved["limits"], file=where)

    judge_fit.check_pairwise(resolved, raw, where)

    chain = tuple(
        _verifier_spec(i, v, where, base, resolved)
        for i, v in enumerate(resolved.get("verify", []))
    )
    given = resolved.get("concurrency")
    concurrency = int(given) if given is not None else _model_slots(resolved, chain)
    steps = tuple(_step_spec(i, s, where, concurrency) for i, s in enumerate(resolved["steps"]))
    recipe = Recipe(
        name=str(resolved.get("name") or (file.stem if file else "adhoc")),
        file=file,
        base_dir=base,
        hash=content_hash({k: v for k, v in resolved.items() if k not in HASH_EXCLUDES}),
        steps=steps,
        chain=chain,
        budget=RunBudget(**resolved.get("budget", {})),
        model=resolved.get("model"),
        concurrency=concurrency,
        settings=merged,
        raw=raw,
        resolved=resolved,
        overrides=overrides,
        needs_llm=bool(resolved.get("model")) or any(_uses_llm(s) for s in (*steps, *chain)),
        trace=bool(resolved.get("trace", True)),
    )
    # Factories check what a schema cannot (an unknown Faker provider, a bad expression),
    # and load the content files the hash must cover.
    with content.recording_used() as loaded:
        built = recipe.instantiate()
    if loaded:
        files = content.digests(loaded, base)
        recipe = dataclasses.replace(recipe, hash=content_hash([recipe.hash, files]))
    recipe._prebuilt.append(built)
    return recipe


def substitute(obj: Any, settings: dict[str, Any], *, file: str, path: str, used: set[str]) -> Any:
    """Replace `${name}` by a setting. A value that is exactly `${name}` keeps the
    setting's type (`count: ${n}` stays an int); inside a longer string it is formatted.
    `$${` writes a literal `${`."""
    if isinstance(obj, dict):
        return {
            k: substitute(v, settings, file=file, path=_join(path, k), used=used)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [
            substitute(v, settings, file=file, path=f"{path}[{i}]", used=used)
            for i, v in enumerate(obj)
        ]
    if not isinstance(obj, str) or "${" not in obj:
        return obj

    def value(name: str) -> Any:
        if name not in settings:
            raise ConfigError(
                f"unknown setting {name!r}",
                file=file,
                path=path,
                expected=f"one of the recipe's settings: {', '.join(sorted(settings)) or 'none'}",
                found=obj,
                fix=f"add `{name}: <default>` under `settings:`, or pass --set {name}=VALUE",
            )
        used.add(name)
        return settings[name]

    whole = _WHOLE.fullmatch(obj)
    if whole:
        return value(whole.group(1))
    return _REF.sub(
        lambda m: "${" + m.group(2) + "}" if m.group(1) else _text(value(m.group(2))), obj
    )


def resolve_settings(
    settings: dict[str, Any], *, file: str, used: set[str] | None = None
) -> dict[str, Any]:
    """Settings may refer to other settings (`path: ${dir}/x.jsonl`); resolve them so no
    `${name}` reaches a step, and refuse a cycle (`a: ${b}`, `b: ${a}`) by name."""
    used = set() if used is None else used
    done: dict[str, Any] = {}

    def value(name: str, chain: tuple[str, ...]) -> Any:
        if name in done:
            return done[name]
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name) :], name))
            raise ConfigError(
                f"settings refer to each other in a circle: {cycle}",
                file=file,
                path=f"$.settings.{name}",
                expected="settings that end in values, not in each other",
                found={k: settings[k] for k in chain[chain.index(name) :]},
                fix=f"give one of {', '.join(sorted(set(chain[chain.index(name) :])))} a "
                "plain value (or pass it with --set)",
            )
        text = json.dumps(settings[name], default=str)
        refs = {m.group(2) for m in _REF.finditer(text) if not m.group(1)} & settings.keys()
        view = {**settings, **{r: value(r, (*chain, name)) for r in sorted(refs)}}
        done[name] = substitute(
            settings[name], view, file=file, path=f"$.settings.{name}", used=used
        )
        return done[name]

    for name in settings:
        value(name, ())
    return done


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
    """`--set key=value` pairs; the value is parsed as YAML (`n=3` is an int, `x=[a]` a list)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not re.fullmatch(_NAME, key.strip()):
            raise ConfigError(
                "malformed --set",
                file="command line",
                path="--set",
                expected="key=value with key a setting name",
                found=pair,
                fix="write it as --set locale=de_DE",
            )
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


def _step_spec(i: int, raw: dict[str, Any], file: str, concurrency: int) -> Spec:
    path = f"$.steps[{i}]"
    use = raw["use"]
    entry = registry.lookup("step", use, file=file, path=f"{path}.use")
    config = {k: v for k, v in raw.items() if k != "use"}
    _check_config(entry, config, file, path)
    props = (entry.schema or {}).get("properties", {})
    if "concurrency" in props and "concurrency" not in config:
        config["concurrency"] = concurrency  # the recipe-wide default for I/O steps
    return Spec(use, use, config, entry, file, path)


def _verifier_spec(
    i: int, raw: str | dict[str, Any], file: str, base: Path, resolved: dict[str, Any]
) -> Spec:
    path = f"$.verify[{i}]"
    if isinstance(raw, dict) and raw["use"] in _registered_verifiers():
        use = raw["use"]
        entry = registry.lookup("verifier", use)
        config = {k: v for k, v in raw.items() if k not in ("use", "name")}
        _check_config(entry, config, file, path)
        return Spec(use, str(raw.get("name", use)), config, entry, file, path)
    # A named verifier file, used as is (`- card-schema`) or with overrides (`- use: card-schema`).
    ref = raw if isinstance(raw, str) else raw["use"]
    try:
        vfile = content.resolve("verifiers", ref, base, file=file, path=path)
    except ConfigError as exc:
        if isinstance(raw, str) and ref in _registered_verifiers():  # `- exact_duplicate`
            entry = registry.lookup("verifier", ref)
            _check_config(entry, {}, file, path)
            resolved["verify"][i] = {"use": ref}
            return Spec(ref, ref, {}, entry, file, path)
        known = ", ".join(sorted(_registered_verifiers()))
        raise ConfigError(
            f"unknown verifier {ref!r}",
            file=file,
            path=path if isinstance(raw, str) else f"{path}.use",
            expected=f"a registered verifier ({known}) or a named one; {exc.expected}",
            found=ref,
            fix="check the name, or run `synth list` to see the verifiers available",
        ) from None
    vraw = content.load_yaml(vfile)
    schema.check(vraw, _NAMED_VERIFIER, file=str(vfile), what="named verifier")
    entry = registry.lookup("verifier", vraw["use"], file=str(vfile), path="$.use")
    config = {k: v for k, v in vraw.items() if k not in ("use", "description", "name")}
    _check_config(entry, config, str(vfile), "$")
    name = vfile.stem
    if isinstance(raw, dict):
        extra = {k: v for k, v in raw.items() if k not in ("use", "name")}
        _check_config(entry, {**config, **extra}, file, path)
        config = {**config, **extra}
        name = str(raw.get("name", name))
    resolved["verify"][i] = {"use": entry.name, "name": name, **config}
    return Spec(entry.name, name, config, entry, str(vfile), "$")


def _check_config(entry: registry.Entry, config: dict[str, Any], file: str, path: str) -> None:
    if not entry.schema:
        return
    try:
        schema.check(config, entry.schema, file=file, what=f"{entry.name!r} configuration")
    except ConfigError as exc:
        inner = exc.path or "$"
        full = path + inner[1:]
        raise ConfigError(
            exc.message,
            file=file,
            path=full,
            expected=exc.expected,
            found=exc.found,
            fix=(exc.fix or "").replace(f"at {inner} ", f"at {full} ") or None,
        ) from None


def _registered_verifiers() -> dict[str, registry.Entry]:
    registry.load_plugins()
    return registry.VERIFIERS


def _model_slots(resolved: dict[str, Any], chain: tuple[Spec, ...]) -> int:
    """Records in flight when the recipe does not say: as many as the models it names
    take calls at once (their `max_concurrency`, from `limits:` or the environment), so
    every admitted slot has a record to work on; a local model takes one at a time. A
    recipe that names no model keeps `DEFAULT_CONCURRENCY`."""
    models = {resolved["model"]} if isinstance(resolved.get("model"), str) else set()
    models |= _models_in(resolved["steps"]) | _models_in([v.config for v in chain])
    if not models:
        return DEFAULT_CONCURRENCY
    from synth.llm import limits as llmlimits  # the LLM layer loads only for model recipes

    table = resolved.get("limits")
    slots = [
        1 if m.startswith("local/") else llmlimits.resolve(table, m).limits.max_concurrency
        for m in models
    ]
    return max(slots, default=DEFAULT_CONCURRENCY)


def _uses_llm(spec: Spec) -> bool:
    return spec.entry.llm or "model" in spec.config


def _join(path: str, key: Any) -> str:
    return (
        f"{path}.{key}"
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(key))
        else f"{path}[{key!r}]"
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _models_in(config: Any) -> set[str]:
    if isinstance(config, dict):
        out: set[str] = set()
        for key, value in config.items():
            if key == "model" and isinstance(value, str):
                out.add(value)
            elif key == "models" and isinstance(value, list):
                out |= {v for v in value if isinstance(v, str)}
            else:
                out |= _models_in(value)
        return out
    if isinstance(config, list):
        return set().union(*(_models_in(v) for v in config)) if config else set()
    return set()
