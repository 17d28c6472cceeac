"""Composing a run's configuration from `experiments/` with Hydra's compose API.

The compose API (not `@hydra.main`) keeps the entry point in charge: no working-directory change, no
multirun (each arm is its own process), and composition mistakes become one-line errors.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from projlab.errors import UserError
from projlab.results import SCRAMBLED, data_control
from projlab.schema import validate

CONFIG_NAME = "train"


def config_dir() -> Path:
    env = os.environ.get("PROJLAB_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "experiments"


def _yaml_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def group_options(group: str) -> list[str]:
    """The options of a config group: its yaml files, and for `projector` every registered projector."""
    if group == "projector":
        return sorted({*_yaml_options(group), *_projector_options()})
    return _yaml_options(group)


def _projector_options() -> list[str]:
    """Every registered projector's name, each a `projector=` option: one without a yaml of its own gets a node
    made of its config dataclass's defaults, so that a projector is one file (a yaml, where there is one, is
    used instead, and holds the same defaults: tests/test_projectors.py)."""
    import projlab.projectors  # noqa: F401  (registers every projector; here, not at the top: it imports torch)
    from projlab.projectors.registry import available_projectors, projector_class

    store, with_yaml = ConfigStore.instance(), set(_yaml_options("projector"))
    for name in available_projectors():
        if name not in with_yaml:
            store.store(group="projector", name=name, node={"name": name, **asdict(projector_class(name).config_cls())})
    return available_projectors()


def _check_group_choices(overrides: list[str]) -> None:
    for ov in overrides:
        key, sep, value = ov.partition("=")
        key = key.lstrip("+~")
        if not sep or "." in key or "/" in key:
            continue
        options = group_options(key)
        if options and value not in options and value != "null":
            what = "projector" if key == "projector" else f"{key} option"
            raise UserError(f"unknown {what} {value!r}; known: {', '.join(options)}")


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The run configuration for `overrides` (Hydra syntax: `group=option`, `key.sub=value`), composed and
    resolved, not yet checked against the rules (a composition mistake is a one-line UserError)."""
    overrides = list(overrides or [])
    _projector_options()
    _check_group_choices(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name=CONFIG_NAME, overrides=overrides)
        missing = unset_keys(cfg)  # before resolving: resolution turns a copy of `???` into `???` itself
        if missing:
            give = " ".join(f"{key}=<value>" for key in missing)
            raise UserError(f"{', '.join(missing)} not set; give {give}")
        OmegaConf.resolve(cfg)
    except (HydraException, OmegaConfBaseException) as err:
        raise UserError(f"bad configuration: {str(err).splitlines()[0]}") from err
    finally:
        GlobalHydra.instance().clear()
    return cfg


def load_config(overrides: list[str] | None = None) -> DictConfig:
    """The resolved run configuration for `overrides`, every setting checked against the rules of
    `projlab.schema` (a broken one is a one-line UserError)."""
    cfg = compose_config(overrides)
    validate(cfg)
    return cfg


def unset_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Keys left `???`: settings only the user can give. Walked without resolving, so a key that copies an
    unset one (`${.train_json}`) is neither listed nor an error of its own."""
    keys = []
    for key in cfg:
        if OmegaConf.is_missing(cfg, key):
            keys.append(f"{prefix}{key}")
        elif not OmegaConf.is_interpolation(cfg, key) and OmegaConf.is_dict(cfg[key]):
            keys += unset_keys(cfg[key], f"{prefix}{key}.")
    return keys


# The overrides that `run_name` reads (a group choice sets its `.name`): a sweep over any other key gives
# its arms a suffix, or they would share one folder.
RUN_NAME_KEYS = ("projector", "projector.num_visual_tokens", "vision.resolution", "seed", "stage", "data.scramble")


# The run-name format, `<projector>-m<M|all>-r<resolution>-s<seed>-<stage>[-scrambled]`: written by
# `run_name` (its first four parts, `arm_label`, also label a sweep's arms before they are composed) and read
# back by `parse_run_name`; nothing else knows it.
_RUN_NAME = re.compile(
    rf"^(?P<projector>.+)-m(?P<tokens>\d+|all)-r(?P<res>\d+)-s(?P<seed>\d+)-(?P<stage>[^-]+)(?P<control>-{SCRAMBLED})?$"
)


def arm_label(projector: str, tokens: int | None, resolution: int, seed: int) -> str:
    """`<projector>-m<M|all>-r<resolution>-s<seed>`: the run name without its stage (M unset: `all`)."""
    return f"{projector}-m{'all' if tokens is None else tokens}-r{resolution}-s{seed}"


def run_name(cfg: DictConfig) -> str:
    """The arm's folder name, derived from what distinguishes arms (never from the clock)."""
    if cfg.get("run_name"):
        return str(cfg.run_name)
    label = arm_label(cfg.projector.name, cfg.projector.get("num_visual_tokens"), cfg.vision.resolution, cfg.seed)
    control = data_control(cfg)
    return f"{label}-{cfg.stage.name}" + (f"-{control}" if control else "")


def parse_run_name(name: str) -> dict[str, Any]:
    """What a run's folder name tells (projector, num_visual_tokens (None for `all`), resolution, seed, stage,
    control), or {} for a name of another form (a `run_name=` given by hand)."""
    m = _RUN_NAME.match(name)
    if not m:
        return {}
    tokens = m["tokens"]
    return {
        "projector": m["projector"], "num_visual_tokens": None if tokens == "all" else int(tokens),
        "resolution": int(m["res"]), "seed": int(m["seed"]), "stage": m["stage"],
        "control": SCRAMBLED if m["control"] else None,
    }
