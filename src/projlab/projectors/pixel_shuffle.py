"""Pixel shuffle (space-to-depth), the connector of InternVL 1.5, Idefics3, SmolVLM and nanoVLM: each r x r
block of the 2-D patch grid becomes one token holding the block's r^2 features side by side (width
C_vision * r^2), so M = N / r^2; then InternVL 1.5's MLP: LayerNorm, Linear to the LLM width, GELU, Linear.

The blocks are cut from the 2-D grid, (B, H, W, C) -> (B, H/r, r, W/r, r, C). Cutting them from the flat
sequence instead, (B, N, C) -> (B, N/r^2, r^2 C), would merge r^2 consecutive patches of one row, not a
block. Channel order within a token: the block's patches row by row (dy, then dx), each C wide, as
nanoVLM's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import block_sides, build_mlp
from projlab.projectors.registry import register
from projlab.projectors.token_rules import Blocks


@dataclass
class PixelShuffleConfig:
    num_visual_tokens: int | None = None  # M = N / r^2, r dividing both grid sides; None: r = 2 (N / 4)
    mlp_depth: int = 2  # layers after the LayerNorm (InternVL 1.5: 2)
    activation: str = "gelu"
    init: str = "reference"  # reference (every linear N(0, 0.02), zero bias) | pytorch


def space_to_depth(x: torch.Tensor, grid: tuple[int, int], r: int) -> torch.Tensor:
    """(B, H*W, C) patches in row-major order -> (B, (H/r)*(W/r), r*r*C): one token per r x r block,
    blocks in row-major order; inside a token, patch (dy, dx) of the block at channels (dy*r + dx) * C."""
    b, _, c = x.shape
    rows, cols = grid
    x = x.reshape(b, rows // r, r, cols // r, r, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, (rows // r) * (cols // r), r * r * c)


@register("pixel_shuffle", PixelShuffleConfig)
class PixelShuffle(Blocks):
    table_rank = 90
    colour = "#12711C"
    source = "InternVL 1.5 (arXiv 2404.16821); Idefics3, SmolVLM, nanoVLM"

    def __init__(self, config: PixelShuffleConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        self.r = block_sides(grid)[self.num_visual_tokens]
        width = vision_dim * self.r * self.r
        self.norm = nn.LayerNorm(width)
        self.readout = build_mlp(config.mlp_depth, width, llm_dim, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), tokens in row-major order over the blocks."""
        self._check_input(x)
        return self.readout(self.norm(space_to_depth(x, self.grid, self.r)))
