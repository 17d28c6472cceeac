"""BLIP-2's Q-Former on transformers' own `Blip2QFormerModel`: M learned query tokens with
self-attention, cross-attention to the visual features every `cross_attention_frequency` layers, then a
linear map to the LLM width (as BLIP-2's language projection). No text input.

Defaults: width = the vision width, 6 layers, cross-attention in every layer, 16 heads, FFN 4x; at
1024 -> 4096 that is about the resampler's size, so the two learned-query arms are comparable.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

from projlab.projectors.base import Projector, attention_heads, build_mlp
from projlab.projectors.registry import register


@dataclass
class QFormerConfig:
    num_visual_tokens: int = 144  # M query tokens (BLIP-2 uses 32; the study matches M = 144)
    depth: int = 6
    num_heads: int | None = None  # None: width // head_dim (16 at the paper's 1024)
    head_dim: int = 64
    ffn_ratio: float = 4.0
    cross_attention_frequency: int = 1
    dropout: float = 0.1
    mlp_depth: int = 1
    init: str = "reference"  # reference (every linear N(0, 0.02), zero bias, as BLIP-2's) | pytorch (readout)


@register("qformer", QFormerConfig)
class QFormer(Projector):
    paper_arm = True
    table_rank = 40
    colour = "#D55E00"
    source = "BLIP-2 (arXiv 2301.12597)"

    def __init__(self, config: QFormerConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        dim = vision_dim
        qcfg = Blip2QFormerConfig(
            hidden_size=dim,
            num_hidden_layers=config.depth,
            num_attention_heads=attention_heads(dim, config.num_heads, config.head_dim),
            intermediate_size=int(dim * config.ffn_ratio),
            cross_attention_frequency=config.cross_attention_frequency,
            encoder_hidden_size=vision_dim,
            hidden_dropout_prob=config.dropout,
            attention_probs_dropout_prob=config.dropout,
            use_qformer_text_input=False,
        )
        self.qformer = Blip2QFormerModel(qcfg)
        self.query_tokens = nn.Parameter(torch.zeros(1, self.num_visual_tokens, dim))
        nn.init.normal_(self.query_tokens, std=qcfg.initializer_range)
        self.readout = build_mlp(config.mlp_depth, dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm)"""
        self._check_input(x)
        q = self.query_tokens.expand(x.shape[0], -1, -1)
        out = self.qformer(query_embeds=q, encoder_hidden_states=x).last_hidden_state
        return self.readout(out)
