"""Honeybee's D-Abstractor: learnable queries that attend, with deformable attention, to a few sampled
points around their reference points on the patch grid, so each token stays tied to a place.

Queries: a learnable content embedding (M, C) with a positional part that is the features adaptively
average-pooled to (sqrt M, sqrt M); reference points (M, 2) learnable, initialised on the uniform
sqrt M grid. `depth` post-norm decoder layers (self-attention, deformable cross-attention, FFN), then a
linear readout to the LLM width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from projlab.projectors.base import PositionalEmbedding, Projector, attention_heads, build_mlp
from projlab.projectors.deformable_attention import MultiScaleDeformableAttention
from projlab.projectors.registry import register


@dataclass
class DAbstractorConfig:
    num_visual_tokens: int = 144  # M: a perfect square no larger than the grid
    depth: int = 6  # decoder layers
    num_heads: int | None = None  # None: width // head_dim (8 at the paper's 1024)
    head_dim: int = 128
    num_points: int = 4  # sampled points per head
    ffn_ratio: float = 1.0  # FFN width relative to the feature width (the reference uses 1x)
    dropout: float = 0.1
    mlp_depth: int = 1  # readout layers (the reference: one Linear)


class DeformableDecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, points: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MultiScaleDeformableAttention(dim, heads=heads, levels=1, points=points)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
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


@register("d_abstractor", DAbstractorConfig)
class DAbstractor(Projector):
    token_rule = "square"

    def __init__(self, config: DAbstractorConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        m, dim = self.num_visual_tokens, vision_dim
        self.side = math.isqrt(m)
        self.pos_emb = PositionalEmbedding(self.num_patches, dim)
        self.query_embed = nn.Parameter(torch.zeros(m, dim))
        nn.init.normal_(self.query_embed)
        centres = (torch.arange(self.side, dtype=torch.float32) + 0.5) / self.side
        ys, xs = torch.meshgrid(centres, centres, indexing="ij")
        self.reference_points = nn.Parameter(torch.stack([xs, ys], -1).reshape(m, 2))  # (x, y), row-major
        ffn_dim, heads = int(dim * config.ffn_ratio), attention_heads(dim, config.num_heads, config.head_dim)
        self.layers = nn.ModuleList(
            DeformableDecoderLayer(dim, heads, config.num_points, ffn_dim, config.dropout)
            for _ in range(config.depth)
        )
        self.readout = build_mlp(config.mlp_depth, dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), tokens in row-major order over the reference grid."""
        self._check_input(x)
        b = x.shape[0]
        value = self.pos_emb(x)  # (B, N, C)
        fmap = value.transpose(1, 2).reshape(b, -1, *self.grid)
        pos = F.adaptive_avg_pool2d(fmap, self.side).flatten(2).transpose(1, 2)  # (B, M, C)
        queries = self.query_embed.unsqueeze(0).expand(b, -1, -1)
        refs = self.reference_points.unsqueeze(0).unsqueeze(2).expand(b, -1, 1, -1)  # (B, M, 1, 2)
        for layer in self.layers:
            queries = layer(queries, pos, refs, value, self.grid)
        return self.readout(queries)
