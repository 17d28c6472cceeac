"""Honeybee's D-Abstractor: learnable queries that attend, with deformable attention, to a few sampled
points around their reference points on the patch grid, so each token stays tied to a place.

Features (projected to `hidden_size` when it differs from the vision width) + a positional embedding are
the values. Queries: a learnable content embedding (M, C) with a positional part that is the values
adaptively average-pooled to (sqrt M, sqrt M); reference points (M, 2) learnable, initialised on a uniform
sqrt M x sqrt M grid spanning the first to the last input-cell centre, as the reference does. `depth`
post-norm decoder layers (self-attention, deformable cross-attention, FFN), then a linear readout to the
LLM width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from projlab.projectors.base import PositionalEmbedding, attention_heads, build_mlp
from projlab.projectors.deformable_attention import MultiScaleDeformableAttention
from projlab.projectors.registry import register
from projlab.projectors.token_rules import SquareGrid


@dataclass
class DAbstractorConfig:
    num_visual_tokens: int = 144  # M: a perfect square no larger than the grid
    depth: int = 6  # decoder layers
    hidden_size: int | None = None  # the decoder's width (the reference's d_model); None: the vision width
    num_heads: int | None = None  # None: width // head_dim (8 at the paper's 1024)
    head_dim: int = 128
    num_points: int = 4  # sampled points per head
    ffn_ratio: float = 1.0  # FFN width relative to the decoder width (the reference uses 1x)
    dropout: float = 0.1  # on each sub-layer's output (Deformable DETR's `dropout`)
    activation_dropout: float = 0.0  # after the FFN's activation (Deformable DETR's `activation_dropout`)
    attention_dropout: float = 0.0  # on the self-attention weights (Deformable DETR's `attention_dropout`)
    mlp_depth: int = 1  # readout layers (the reference: one Linear)
    # reference: every linear and embedding N(0, 0.02), zero bias, reference points from the input cells;
    # pytorch: PyTorch's and Deformable DETR's own init, query embedding N(0, 1), output-cell centres
    init: str = "reference"


class DeformableDecoderLayer(nn.Module):
    def __init__(
        self, dim: int, heads: int, points: int, ffn_dim: int, dropout: float, activation_dropout: float,
        attention_dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MultiScaleDeformableAttention(dim, heads=heads, levels=1, points=points)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(activation_dropout), nn.Linear(ffn_dim, dim)
        )
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        grid: tuple[int, int],
    ) -> torch.Tensor:
        """x, pos: (B, M, C); reference_points: (B, M, 1, 2); value: (B, N, C). Returns (B, M, C)."""
        q = x + pos
        x = self.norm1(x + self.dropout(self.self_attn(q, q, x, need_weights=False)[0]))
        x = self.norm2(x + self.dropout(self.cross_attn(x + pos, reference_points, value, [grid])))
        return self.norm3(x + self.dropout(self.ffn(x)))


def grid_points(side: int, grid: tuple[int, int], span: str) -> torch.Tensor:
    """(side * side, 2) points (x, y) in [0, 1], row-major. `span="input"`: from the first to the last input
    cell's centre (the reference: on 16x16, 0.03125 ... 0.96875); `"output"`: the centres of a side x side
    partition of the image."""
    axes = []
    for cells in (grid[0], grid[1]):
        if span == "input":
            axes.append(torch.linspace(0.5, cells - 0.5, side) / cells)
        else:
            axes.append((torch.arange(side, dtype=torch.float32) + 0.5) / side)
    ys, xs = torch.meshgrid(axes[0], axes[1], indexing="ij")
    return torch.stack([xs, ys], -1).reshape(side * side, 2)


@register("d_abstractor", DAbstractorConfig)
class DAbstractor(SquareGrid):
    paper_arm = True
    table_rank = 60
    colour = "#CA9161"
    source = "Honeybee (arXiv 2312.06742)"

    def __init__(self, config: DAbstractorConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        m, dim = self.num_visual_tokens, config.hidden_size or vision_dim
        self.side = math.isqrt(m)
        self.input_proj = nn.Identity() if dim == vision_dim else nn.Linear(vision_dim, dim)
        self.pos_emb = PositionalEmbedding(self.num_patches, dim)
        self.query_embed = nn.Embedding(m, dim)  # the queries' content part
        span = "input" if config.init == "reference" else "output"
        # empty + copy: the parameter lands on the device being built on (meta when counting)
        self.reference_points = nn.Parameter(torch.empty(m, 2))
        with torch.no_grad():
            self.reference_points.copy_(grid_points(self.side, grid, span))
        ffn_dim, heads = int(dim * config.ffn_ratio), attention_heads(dim, config.num_heads, config.head_dim)
        self.layers = nn.ModuleList(
            DeformableDecoderLayer(
                dim, heads, config.num_points, ffn_dim, config.dropout, config.activation_dropout,
                config.attention_dropout,
            )
            for _ in range(config.depth)
        )
        self.readout = build_mlp(config.mlp_depth, dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), tokens in row-major order over the reference grid."""
        self._check_input(x)
        b = x.shape[0]
        value = self.pos_emb(self.input_proj(x))  # (B, N, C)
        fmap = value.transpose(1, 2).reshape(b, -1, *self.grid)
        pos = F.adaptive_avg_pool2d(fmap, self.side).flatten(2).transpose(1, 2)  # (B, M, C)
        queries = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        refs = self.reference_points.unsqueeze(0).unsqueeze(2).expand(b, -1, 1, -1)  # (B, M, 1, 2)
        for layer in self.layers:
            queries = layer(queries, pos, refs, value, self.grid)
        return self.readout(queries)
