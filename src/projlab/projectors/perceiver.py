"""The perceiver resampler of Flamingo (arXiv 2204.14198) and Idefics2: M learned latents read the features
through `depth` pre-norm layers. Per layer: the latents attend to [features ; latents] (keys and values are
the concatenation, so the latents also see each other), added back to the latents; then a pre-norm FFN
(LayerNorm, Linear, GELU, Linear; no biases, as Flamingo's), added back. A final LayerNorm, then a Linear to
the LLM width.

It differs from Honeybee's `resampler` (mPLUG-Owl's abstractor) in where the norms sit: the latents keep
their un-normed residual stream and the result is normed once at the end, where the resampler adds the
attention to its normed queries. Flamingo's optional positional embeddings of frames and media are left
out: one image, and the tower's features already carry their positions. Width: the vision width.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import Projector, attention_heads, build_mlp
from projlab.projectors.registry import register


@dataclass
class PerceiverConfig:
    num_visual_tokens: int = 144  # M learned latents (Flamingo and Idefics2 use 64)
    depth: int = 6  # Flamingo: 6; Idefics2: 3
    num_heads: int | None = None  # None: width // head_dim (16 at the paper's 1024)
    head_dim: int = 64
    ffn_ratio: float = 4.0
    mlp_depth: int = 1  # readout layers
    init: str = "reference"  # reference (every linear and attention N(0, 0.02), zero bias; latents N(0, 1)) | pytorch


class PerceiverLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, bias=False, batch_first=True)
        self.ffn = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, ffn_dim, bias=False), nn.GELU(), nn.Linear(ffn_dim, dim, bias=False)
        )

    def forward(self, latents: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """latents: (B, M, C), feats: (B, N, C) -> (B, M, C)"""
        q = self.norm_latents(latents)
        kv = torch.cat([self.norm_media(feats), q], dim=1)  # (B, N + M, C)
        latents = latents + self.attn(q, kv, kv, need_weights=False)[0]
        return latents + self.ffn(latents)


@register("perceiver", PerceiverConfig)
class Perceiver(Projector):
    table_rank = 110
    colour = "#591E71"
    source = "Flamingo (arXiv 2204.14198); Idefics2 (arXiv 2405.02246)"

    def __init__(self, config: PerceiverConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        dim = vision_dim
        self.latents = nn.Parameter(torch.randn(1, self.num_visual_tokens, dim))
        heads = attention_heads(dim, config.num_heads, config.head_dim)
        self.layers = nn.ModuleList(
            PerceiverLayer(dim, heads, int(dim * config.ffn_ratio)) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.readout = build_mlp(config.mlp_depth, dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm)"""
        self._check_input(x)
        latents = self.latents.expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, x)
        return self.readout(self.norm(latents))
