"""MobileVLM V2's LDPv2 (lightweight downsample projector v2, arXiv 2402.03766): a per-patch MLP to the LLM
width (Linear, GELU, Linear), an adaptive average pool of the grid to (sqrt M, sqrt M), then a positional
encoding generator (PEG: a depthwise 3x3 convolution with bias, added back to its input).

Unlike DeCo's order (`avgpool`), the MLP runs on all N patches before pooling, at the LLM's width.
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
class LDPv2Config:
    num_visual_tokens: int = 144  # M: a perfect square no larger than the grid (MobileVLM V2: 144 of 576)
    mlp_depth: int = 2
    activation: str = "gelu"
    init: str = "reference"  # reference (every linear and conv N(0, 0.02), zero bias) | pytorch


@register("ldpv2", LDPv2Config)
class LDPv2(SquareGrid):
    table_rank = 80
    colour = "#006374"
    source = "MobileVLM V2's LDPv2 (arXiv 2402.03766)"

    def __init__(self, config: LDPv2Config, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        self.side = math.isqrt(self.num_visual_tokens)
        self.mlp = build_mlp(config.mlp_depth, vision_dim, llm_dim, config.activation)
        self.pool = nn.AdaptiveAvgPool2d((self.side, self.side))
        self.peg = nn.Conv2d(llm_dim, llm_dim, 3, padding=1, groups=llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), tokens in row-major order over the pooled grid."""
        self._check_input(x)
        x = self.mlp(x)  # (B, N, C_llm)
        b, _, c = x.shape
        x = self.pool(x.transpose(1, 2).reshape(b, c, *self.grid))  # (B, C_llm, sqrt M, sqrt M)
        x = x + self.peg(x)
        return x.flatten(2).transpose(1, 2)
