"""LLaVA-1.5's projector: a 2-layer GELU MLP per patch; M = N.

GELU as in LLaVA-1.5 (the Honeybee reference's MLP config uses SiLU; the parameter count is the same).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import Projector
from projlab.projectors.registry import register


@dataclass
class MLPConfig:
    num_visual_tokens: int | None = None  # must be N (or unset)
    depth: int = 2


@register("mlp", MLPConfig)
class MLPProjector(Projector):
    token_rule = "all_patches"

    def __init__(self, config: MLPConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        layers: list[nn.Module] = [nn.Linear(vision_dim, llm_dim)]
        for _ in range(1, config.depth):
            layers += [nn.GELU(), nn.Linear(llm_dim, llm_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, N, C_llm)"""
        self._check_input(x)
        return self.net(x)
