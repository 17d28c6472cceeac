"""LLaVA-1.5's projector: a 2-layer MLP per patch; M = N.

GELU by default, as in LLaVA-1.5; the Honeybee reference's MLP config uses SiLU (`activation: silu`). The
parameter count is the same either way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from projlab.projectors.base import build_mlp
from projlab.projectors.registry import register
from projlab.projectors.token_rules import PerPatch


@dataclass
class MLPConfig:
    num_visual_tokens: int | None = None  # must be N (or unset)
    depth: int = 2
    activation: str = "gelu"  # gelu (LLaVA-1.5) | silu (the Honeybee reference's MLP)
    init: str = "reference"  # reference (N(0, 0.02), zero bias) | pytorch


@register("mlp", MLPConfig)
class MLPProjector(PerPatch):
    paper_arm = True
    table_rank = 20
    colour = "#DE8F05"
    source = "LLaVA-1.5 (arXiv 2310.03744)"

    def __init__(self, config: MLPConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        self.net = build_mlp(config.depth, vision_dim, llm_dim, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, N, C_llm)"""
        self._check_input(x)
        return self.net(x)
