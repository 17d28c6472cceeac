"""TokenPacker (arXiv 2407.02392): coarse point queries that each read only their own region of the fine
features, then an MLP to the LLM width.

With s = grid side / sqrt(M) (it must divide both sides: M = N / s^2), the fine grid is cut into s x s
regions. A region's query is its features averaged (TokenPacker interpolates the grid down by s, which at
its s = 2 is this average), through a Linear without bias and a LayerNorm; its keys and values are the
region's s^2 fine features, each through a Linear and a LayerNorm. One multi-head attention per region
(the query attends to those s^2 keys and no others), then Linear, GELU, Linear to the LLM width.

TokenPacker takes its keys and values from several tower layers concatenated; the tower here gives one
layer, so keys and values are that layer's features (the key and value projections map C -> C, not 4C -> C).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import attention_heads, block_sides, build_mlp
from projlab.projectors.pixel_shuffle import space_to_depth
from projlab.projectors.registry import register
from projlab.projectors.token_rules import Blocks


@dataclass
class TokenPackerConfig:
    num_visual_tokens: int | None = None  # M = N / s^2, s dividing both grid sides; None: s = 2 (N / 4)
    num_heads: int | None = None  # None: width // head_dim (8 at the paper's 1024, as TokenPacker)
    head_dim: int = 128
    norm_eps: float = 1e-6  # the query, key and value LayerNorms
    mlp_depth: int = 2
    activation: str = "gelu"
    init: str = "reference"  # reference (every linear and attention N(0, 0.02), zero bias) | pytorch


@register("tokenpacker", TokenPackerConfig)
class TokenPacker(Blocks):
    table_rank = 100
    colour = "#8C0800"
    source = "TokenPacker (arXiv 2407.02392)"

    def __init__(self, config: TokenPackerConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        dim = vision_dim
        self.s = block_sides(grid)[self.num_visual_tokens]
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.norm_q = nn.LayerNorm(dim, eps=config.norm_eps)
        self.norm_k = nn.LayerNorm(dim, eps=config.norm_eps)
        self.norm_v = nn.LayerNorm(dim, eps=config.norm_eps)
        heads = attention_heads(dim, config.num_heads, config.head_dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.readout = build_mlp(config.mlp_depth, dim, llm_dim, config.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), one token per s x s region, regions in row-major order."""
        self._check_input(x)
        b, _, c = x.shape
        m, ss = self.num_visual_tokens, self.s * self.s
        regions = space_to_depth(x, self.grid, self.s).reshape(b * m, ss, c)  # (B*M, s^2, C)
        query = self.norm_q(self.q_proj(regions.mean(1, keepdim=True)))  # (B*M, 1, C)
        key = self.norm_k(self.k_proj(regions))
        value = self.norm_v(self.v_proj(regions))
        out = self.attn(query, key, value, need_weights=False)[0]  # (B*M, 1, C)
        return self.readout(out.reshape(b, m, c))
