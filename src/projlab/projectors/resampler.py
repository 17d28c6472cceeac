"""Honeybee's resampler baseline (mPLUG-Owl's visual abstractor style): M learned queries that read the
whole grid through attention, so each output token can mix any place of the image (no locality).

The features are mapped to `hidden_size` (the reference's `visual_input_fc`). Per layer: LayerNorm on the
queries and, separately, on the features; attention with queries = normed queries, keys/values = [normed
queries ; normed features]; output added to the normed queries; then x + SwiGLU(LayerNorm(x)) with
SwiGLU = w2(LayerNorm(SiLU(w1 x) * w3 x)). Then a linear readout. Every LayerNorm computes in float32
under mixed precision (the reference's `LayerNormFp32`); the one inside SwiGLU uses eps 1e-6, the others
PyTorch's 1e-5, as the reference's config does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import LayerNormFp32, Projector, attention_heads, build_mlp
from projlab.projectors.registry import register


@dataclass
class ResamplerConfig:
    num_visual_tokens: int = 144  # M learned queries (the reference's default is 64; the study matches M = 144)
    depth: int = 6
    hidden_size: int | None = None  # the layers' width (the reference's hidden_size); None: the vision width
    num_heads: int | None = None  # None: width // head_dim (16 at the paper's 1024)
    head_dim: int = 64
    ffn_ratio: float = 4.0  # SwiGLU width relative to the layers' width
    attn_dropout: float = 0.1  # on the attention weights (the reference's attention_probs_dropout_prob)
    norm_eps: float = 1e-5  # the query, feature and pre-FFN LayerNorms
    ffn_norm_eps: float = 1e-6  # the LayerNorm inside SwiGLU (the reference's layer_norm_eps)
    mlp_depth: int = 1
    init: str = "reference"  # reference (every linear N(0, 0.02), zero bias; queries zero) | pytorch


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden)
        self.w3 = nn.Linear(dim, hidden)
        self.norm = LayerNormFp32(hidden, eps=eps)
        self.w2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.norm(nn.functional.silu(self.w1(x)) * self.w3(x)))


class ResamplerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int, config: ResamplerConfig) -> None:
        super().__init__()
        self.norm_q = LayerNormFp32(dim, eps=config.norm_eps)
        self.norm_f = LayerNormFp32(dim, eps=config.norm_eps)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=config.attn_dropout, batch_first=True)
        self.norm_ffn = LayerNormFp32(dim, eps=config.norm_eps)
        self.ffn = SwiGLU(dim, ffn_dim, config.ffn_norm_eps)

    def forward(self, q: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """q: (B, M, C), feats: (B, N, C) -> (B, M, C)"""
        q = self.norm_q(q)
        kv = torch.cat([q, self.norm_f(feats)], dim=1)
        x = q + self.attn(q, kv, kv, need_weights=False)[0]
        return x + self.ffn(self.norm_ffn(x))


@register("resampler", ResamplerConfig)
class Resampler(Projector):
    paper_arm = True
    table_rank = 30
    colour = "#029E73"
    source = "Honeybee's baseline after mPLUG-Owl's abstractor (arXiv 2304.14178)"

    def __init__(self, config: ResamplerConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        dim = config.hidden_size or vision_dim
        self.input_proj = nn.Linear(vision_dim, dim)
        self.queries = nn.Parameter(torch.zeros(1, self.num_visual_tokens, dim))
        heads = attention_heads(dim, config.num_heads, config.head_dim)
        self.layers = nn.ModuleList(
            ResamplerLayer(dim, heads, int(dim * config.ffn_ratio), config) for _ in range(config.depth)
        )
        self.readout = build_mlp(config.mlp_depth, dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm)"""
        self._check_input(x)
        feats = self.input_proj(x)
        q = self.queries.expand(x.shape[0], -1, -1)
        for layer in self.layers:
            q = layer(q, feats)
        return self.readout(q)
