"""DeCo's projector ("DeCo: Decoupling Token Compression from Semantic Abstraction", arXiv 2405.20985):
compress without parameters, then map. The patch grid is adaptively average-pooled to (sqrt M, sqrt M),
and each pooled feature goes through a 2-layer GELU MLP (vision -> LLM -> LLM), as LLaVA-1.5's projector.

The pooling keeps locality by construction: a token is the mean of its own cell of the grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import build_mlp
from projlab.projectors.registry import register
from projlab.projectors.token_rules import SquareGrid


@dataclass
class AvgPoolConfig:
    num_visual_tokens: int = 144  # M: a perfect square no larger than the grid
    mlp_depth: int = 2  # readout layers (DeCo: 2)
    activation: str = "gelu"
    init: str = "reference"  # reference (every linear N(0, 0.02), zero bias) | pytorch


@register("avgpool", AvgPoolConfig)
class AvgPoolProjector(SquareGrid):
    table_rank = 70
    colour = "#ECE133"
    source = "DeCo (arXiv 2405.20985)"

    def __init__(self, config: AvgPoolConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        side = math.isqrt(self.num_visual_tokens)
        self.pool = nn.AdaptiveAvgPool2d((side, side))
        self.readout = build_mlp(config.mlp_depth, vision_dim, llm_dim, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), tokens in row-major order over the pooled grid."""
        self._check_input(x)
        b, _, c = x.shape
        x = self.pool(x.transpose(1, 2).reshape(b, c, *self.grid))  # (B, C, sqrt M, sqrt M)
        return self.readout(x.flatten(2).transpose(1, 2))
