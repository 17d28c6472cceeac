"""Where a sweep's arms run: a choice of the config group `experiments/launcher/`, read by the sweep drivers.

    launcher=local                  (the default) processes of this machine, --jobs at a time
    launcher=slurm                  one SLURM job per arm, through submitit (`projlab.sweeps.slurm`)
    launcher.partition=a100 ...     any key of the chosen file, e.g. launcher.time_min=600

These overrides are taken out of the sweep's Hydra overrides before the arms are composed: where an arm runs
is not part of what it trains, so its config, folder and results are the same under either launcher.
"""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from projlab.config import config_dir, group_options
from projlab.errors import UserError

GROUP = "launcher"
DEFAULT = "local"


def split_launcher(overrides: list[str] | tuple[str, ...]) -> tuple[DictConfig, list[str]]:
    """The launcher the overrides choose (`launcher=NAME`, `launcher.KEY=VALUE`) and the other overrides."""
    choice, keys, rest = DEFAULT, [], []
    for ov in overrides:
        key, _, value = ov.partition("=")
        if key.lstrip("+") == GROUP:
            choice = value
        elif key.lstrip("+").startswith(GROUP + "."):
            keys.append(ov.lstrip("+")[len(GROUP) + 1:])
        else:
            rest.append(ov)
    return load_launcher(choice, keys), rest


def load_launcher(choice: str, keys: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """`experiments/launcher/<choice>.yaml` with `keys` (KEY=VALUE) set; an unknown choice or key is one line."""
    options = group_options(GROUP)
    if choice not in options:
        raise UserError(f"launcher={choice!r} is unknown; known: {', '.join(options)}")
    cfg = OmegaConf.load(config_dir() / GROUP / f"{choice}.yaml")
    OmegaConf.set_struct(cfg, True)
    for free in ("sbatch",):  # a mapping of the user's own options: any key
        if free in cfg:
            OmegaConf.set_struct(cfg[free], False)
    for item in keys:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"launcher.{item}: give launcher.KEY=VALUE")
        try:
            cfg.merge_with(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException:
            known = ", ".join(str(k) for k in cfg)
            raise UserError(f"launcher.{key}: not a setting of launcher={choice}; known: {known}") from None
    return cfg


def settings(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
