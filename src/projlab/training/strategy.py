"""Distribution is configuration: `trainer.strategy` -> a Lightning strategy. The model only offers its
sharding units (`MLLM.sharding_units`)."""
from __future__ import annotations

from omegaconf import DictConfig

from projlab.models.mllm import MLLM


def build_strategy(trainer_cfg: DictConfig, model: MLLM):
    """Return (strategy for L.Trainer, world size)."""
    devices = trainer_cfg.devices if isinstance(trainer_cfg.devices, int) else 1
    world = devices * trainer_cfg.num_nodes
    return trainer_cfg.strategy, world
