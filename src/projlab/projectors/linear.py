"""LLaVA-1's projector: one linear map per patch; M = N."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.registry import register
from projlab.projectors.token_rules import PerPatch


@dataclass
class LinearConfig:
    num_visual_tokens: int | None = None  # must be N (or unset): every patch is kept
    init: str = "reference"  # reference (N(0, 0.02), zero bias) | pytorch


@register("linear", LinearConfig)
class LinearProjector(PerPatch):
    paper_arm = True
    table_rank = 10
    colour = "#0173B2"
    source = "LLaVA (arXiv 2304.08485)"

    def __init__(self, config: LinearConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        self.proj = nn.Linear(vision_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, N, C_llm)"""
        self._check_input(x)
        return self.proj(x)
