"""What a sweep covers, as read from its YAML: one loader for every kind of spec, one check of the overrides a
sweep sets itself, and the list parsers the spec files and the command lines share.

- `GridSpec` (`sweeps/default.yaml`...): projectors x tokens x resolutions x seeds (`projlab.sweeps.grid`).
- `CalibrationSpec` (`sweeps/calibration.yaml`): named arms over seeds, then projectors at matched tokens
  (`projlab.sweeps.calibrate`).
- `SearchSpec` (`sweeps/lr_*.yaml`): an Optuna study's space, sampler and pruner (`projlab.sweeps.search`);
  the sampler and pruner tables are here, so a spec is checked when it is read.

Every mistake (a missing file, bad YAML, an unknown or missing key, a value of the wrong kind) is a one-line
UserError naming the file.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from projlab.errors import UserError
from projlab.io import read_yaml_mapping
from projlab.sweeps.storage import Heartbeat

RESERVED = ("sweep", "run_name")  # keys a sweep sets on every arm itself


def read_spec(path: str | Path, cls: type, kind: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The mapping in the YAML file `path`, every key one of dataclass `cls`'s fields and each of `required`
    present; `kind` names the file in errors ("sweep spec", "search spec"...)."""
    path = Path(path)
    data = read_yaml_mapping(path, kind)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{kind} '{path}': unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    for key in required:
        if key not in data:
            raise UserError(f"{kind} '{path}' has no '{key}'")
    return data


def check_reserved(overrides: list[str], who: str = "the sweep", hint: str = " (use --name)",
                   reserved: tuple[str, ...] = RESERVED) -> None:
    """A UserError for an override of a key the sweep (`who`) sets on every arm itself, or of a key under it."""
    for ov in overrides:
        key = ov.partition("=")[0].lstrip("+~")
        if any(key == r or key.startswith(r + ".") for r in reserved):
            raise UserError(f"override {ov!r}: {who} sets {key} itself{hint}")


# ---- lists ----------------------------------------------------------------------------------------
def _items(text: str, what: str) -> list[str]:
    """The items of a comma list; an empty one (`64,,144`, a trailing comma) is a mistake, not skipped."""
    items = [v.strip() for v in text.split(",")]
    if any(not v for v in items):
        raise UserError(f"{what}: {text!r} has an empty item; give values separated by single commas")
    return items


def int_list(value: Any, what: str) -> list[int]:
    items = value if isinstance(value, list) else _items(str(value), what)
    if any(isinstance(v, bool) or isinstance(v, float) for v in items):
        raise UserError(f"{what}: {value!r} is not a list of integers")
    try:
        return [int(str(v).strip()) for v in items]
    except ValueError:
        raise UserError(f"{what}: {value!r} is not a list of integers") from None


def str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return _items(value, what)
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise UserError(f"{what}: {value!r} is not a list of names")
    return [str(v) for v in value]


def _override_map(path: Path, kind: str, key: str, value: Any) -> dict[str, list[str]]:
    """A name -> list of overrides mapping (`projector_overrides`, `controls`, `arms`)."""
    if not isinstance(value, dict):
        raise UserError(f"{kind} '{path}': {key} must map a name to a list of overrides")
    return {str(k): str_list(v or [], f"{key}.{k}") for k, v in value.items()}


# ---- grid ----------------------------------------------------------------------------------------
@dataclass
class GridSpec:
    """What a grid sweep covers. `overrides` go to every arm; `projector_overrides[name]` to that
    projector's arms only (e.g. a depth that only one projector has)."""

    name: str = "default"
    projectors: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    res: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    projector_overrides: dict[str, list[str]] = field(default_factory=dict)
    # data-side controls, label -> overrides (e.g. scrambled: [projector=mlp, data.scramble=true]), run once
    # per resolution x seed; left out when --projectors picks the projectors
    controls: dict[str, list[str]] = field(default_factory=dict)


def load_spec(path: str | Path) -> GridSpec:
    """Read a grid spec YAML."""
    path, kind = Path(path), "sweep spec"
    data = read_spec(path, GridSpec, kind)
    return GridSpec(
        name=str(data.get("name", "default")),
        projectors=str_list(data.get("projectors", []), "projectors"),
        tokens=int_list(data.get("tokens", []), "tokens"),
        res=int_list(data.get("res", []), "res"),
        seeds=int_list(data.get("seeds", [0]), "seeds"),
        overrides=str_list(data.get("overrides") or [], "overrides"),
        projector_overrides=_override_map(path, kind, "projector_overrides", data.get("projector_overrides") or {}),
        controls=_override_map(path, kind, "controls", data.get("controls") or {}),
    )


# ---- calibration -----------------------------------------------------------------------------------
@dataclass
class CalibrationSpec:
    """The calibration sweep: each of `arms` (label -> overrides) for every seed, then every projector of
    `matched` at each of its token counts (labelled `<projector>-m<M>`); `overrides` go to every arm."""

    name: str
    seeds: list[int]
    arms: dict[str, list[str]]
    overrides: list[str] = field(default_factory=list)
    matched: dict[str, list[Any]] = field(default_factory=dict)  # projectors: [...], tokens: [...]

    @property
    def matched_projectors(self) -> list[str]:
        return list(self.matched.get("projectors") or [])

    @property
    def matched_tokens(self) -> list[int]:
        return list(self.matched.get("tokens") or [])


def load_calibration_spec(path: str | Path) -> CalibrationSpec:
    """Read a calibration spec YAML."""
    path, kind = Path(path), "calibration spec"
    data = read_spec(path, CalibrationSpec, kind, required=("name", "seeds", "arms"))
    matched = data.get("matched") or {}
    if not isinstance(matched, dict) or set(matched) - {"projectors", "tokens"}:
        raise UserError(f"{kind} '{path}': matched takes projectors and tokens")
    return CalibrationSpec(
        name=str(data["name"]),
        seeds=int_list(data["seeds"], "seeds"),
        arms=_override_map(path, kind, "arms", data["arms"]),
        overrides=str_list(data.get("overrides") or [], "overrides"),
        matched={"projectors": str_list(matched.get("projectors") or [], "matched.projectors"),
                 "tokens": int_list(matched.get("tokens") or [], "matched.tokens")},
    )


# ---- search -------------------------------------------------------------------------------------------
DEFAULT_MONITOR = "val/acc"
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}


def build_pruner(spec: dict[str, Any] | None) -> optuna.pruners.BasePruner:
    """A pruner from `{type: median, n_startup_trials: 5, ...}` (the keys are the class's arguments)."""
    spec = dict(spec or {"type": "median"})
    kind = str(spec.pop("type", "median"))
    if kind not in PRUNERS:
        raise UserError(f"pruner type {kind!r} is unknown; known: {', '.join(PRUNERS)}")
    try:
        return PRUNERS[kind](**spec)
    except (TypeError, ValueError) as err:
        raise UserError(f"pruner {kind}: {err}") from None


SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}


@dataclass
class SearchSpec:
    study: str
    n_trials: int
    space: dict[str, BaseDistribution]
    direction: str = "maximize"
    objective: str = "metrics.accuracy"
    monitor: str = DEFAULT_MONITOR
    overrides: list[str] = field(default_factory=list)
    sampler: dict[str, Any] = field(default_factory=lambda: {"type": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    heartbeat: Heartbeat = field(default_factory=Heartbeat)


# ---- the spec ---------------------------------------------------------------------------------------
def _number(value: Any, what: str) -> float:
    """YAML 1.1 reads `1e-4` as a string: accept numbers written either way."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}: {value!r} is not a number") from None


def distribution(key: str, spec: Any) -> BaseDistribution:
    """`{type: float, low, high, log, step}`, `{type: int, low, high, log, step}` or `{type: categorical,
    choices: [...]}` as an Optuna distribution."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise UserError(f"space.{key}: give a mapping with a type (float, int or categorical)")
    spec = dict(spec)
    kind = spec.pop("type")
    try:
        if kind == "float":
            step = spec.pop("step", None)
            low = _number(spec.pop("low", None), f"space.{key}.low")
            high = _number(spec.pop("high", None), f"space.{key}.high")
            step = None if step is None else _number(step, f"space.{key}.step")
            return FloatDistribution(low, high, log=bool(spec.pop("log", False)), step=step, **spec)
        if kind == "int":
            return IntDistribution(
                int(_number(spec.pop("low", None), f"space.{key}.low")),
                int(_number(spec.pop("high", None), f"space.{key}.high")),
                log=bool(spec.pop("log", False)), step=int(spec.pop("step", 1)), **spec,
            )
        if kind == "categorical":
            choices = spec.pop("choices", None)
            if not isinstance(choices, list) or not choices:
                raise UserError(f"space.{key}: categorical needs a non-empty list of choices")
            return CategoricalDistribution(choices, **spec)
    except (TypeError, ValueError) as err:
        raise UserError(f"space.{key}: {err}") from None
    raise UserError(f"space.{key}: type {kind!r} is unknown; use float, int or categorical")


def load_search_spec(path: str | Path) -> SearchSpec:
    """Read and check a search YAML; every mistake is a one-line UserError."""
    path = Path(path)
    data = read_spec(path, SearchSpec, "search spec")
    for key in ("study", "n_trials", "space"):
        if not data.get(key):
            raise UserError(f"search spec '{path}': {key} is required")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(data["study"])):
        raise UserError(f"search spec '{path}': study {data['study']!r} must be a plain name (letters, digits, _.-)")
    if not isinstance(data["space"], dict):
        raise UserError(f"search spec '{path}': space must map override keys to distributions")
    direction = str(data.get("direction", "maximize"))
    if direction not in ("maximize", "minimize"):
        raise UserError(f"search spec '{path}': direction must be maximize or minimize, not {direction!r}")
    spec = SearchSpec(
        study=str(data["study"]),
        n_trials=int(_number(data["n_trials"], "n_trials")),
        space={str(k): distribution(str(k), v) for k, v in data["space"].items()},
        direction=direction,
        objective=str(data.get("objective", "metrics.accuracy")),
        monitor=str(data.get("monitor", DEFAULT_MONITOR)),
        overrides=[str(o) for o in data.get("overrides") or []],
        sampler=dict(data.get("sampler") or {"type": "tpe", "seed": 0}),
        pruner=dict(data.get("pruner") or {"type": "median"}),
        enqueue=list(data.get("enqueue") or []),
    )
    build_sampler(spec.sampler, 0)
    build_pruner(spec.pruner)
    beat = data.get("heartbeat") or {}
    unknown = sorted(set(beat) - set(Heartbeat.__dataclass_fields__)) if isinstance(beat, dict) else ["?"]
    if unknown:
        raise UserError(f"search spec '{path}': heartbeat takes {', '.join(Heartbeat.__dataclass_fields__)}")
    spec.heartbeat = Heartbeat(**{k: int(_number(v, f"heartbeat.{k}")) for k, v in beat.items()})
    if not 0 < spec.heartbeat.interval_s < spec.heartbeat.grace_s:
        raise UserError(f"search spec '{path}': heartbeat needs 0 < interval_s < grace_s")
    return spec


def build_sampler(spec: dict[str, Any], worker: int) -> optuna.samplers.BaseSampler:
    """A sampler from `{type: tpe, seed: 0, ...}`; worker k gets seed + k so parallel workers differ."""
    spec = dict(spec)
    kind = str(spec.pop("type", "tpe"))
    if kind not in SAMPLERS:
        raise UserError(f"sampler type {kind!r} is unknown; known: {', '.join(SAMPLERS)}")
    if spec.get("seed") is not None:
        spec["seed"] = int(spec["seed"]) + worker
    try:
        return SAMPLERS[kind](**spec)
    except (TypeError, ValueError) as err:
        raise UserError(f"sampler {kind}: {err}") from None
