"""Honeybee's C-Abstractor: convolutional abstraction that keeps locality.

features + pos_emb -> (B, C, H, W) -> `depth` RegNet bottleneck blocks -> adaptive average pool to
(sqrt M, sqrt M) -> `depth` blocks -> flatten -> MLP readout to the LLM width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.base import PositionalEmbedding, build_mlp
from projlab.projectors.registry import register
from projlab.projectors.token_rules import SquareGrid


@dataclass
class CAbstractorConfig:
    num_visual_tokens: int = 144  # M: a perfect square no larger than the grid
    depth: int = 3  # RegNet blocks before and after pooling
    mlp_depth: int = 2  # readout layers
    hidden_size: int | None = None  # block width; None = the vision width (1024 for ViT-L)
    se_ratio: float = 0.25  # squeeze-excitation width, relative to the block's input width
    init: str = "reference"  # reference (every conv and linear N(0, 0.02), zero bias) | pytorch


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


class RegNetBottleneck(nn.Module):
    """timm's RegNet bottleneck at bottle_ratio 1, group width 1 (depthwise), SiLU, LayerNorm2d."""

    def __init__(self, in_dim: int, out_dim: int, se_ratio: float) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, bias=False), LayerNorm2d(out_dim), nn.SiLU())
        self.conv2 = nn.Sequential(
            nn.Conv2d(out_dim, out_dim, 3, padding=1, groups=out_dim, bias=False), LayerNorm2d(out_dim), nn.SiLU()
        )
        self.se = SqueezeExcite(out_dim, int(round(in_dim * se_ratio)))
        self.conv3 = nn.Sequential(nn.Conv2d(out_dim, out_dim, 1, bias=False), LayerNorm2d(out_dim))
        self.shortcut = (
            nn.Identity()
            if in_dim == out_dim
            else nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, bias=False), LayerNorm2d(out_dim))
        )
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act(y + self.shortcut(x))


def reg_stage(depth: int, in_dim: int, out_dim: int, se_ratio: float) -> nn.Sequential:
    return nn.Sequential(
        *[RegNetBottleneck(in_dim if i == 0 else out_dim, out_dim, se_ratio) for i in range(depth)]
    )


@register("c_abstractor", CAbstractorConfig)
class CAbstractor(SquareGrid):
    paper_arm = True
    table_rank = 50
    colour = "#CC78BC"
    source = "Honeybee (arXiv 2312.06742)"

    def __init__(self, config: CAbstractorConfig, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__(config, vision_dim, llm_dim, grid)
        hidden = config.hidden_size or vision_dim
        self.pos_emb = PositionalEmbedding(self.num_patches, vision_dim)
        self.stage1 = reg_stage(config.depth, vision_dim, hidden, config.se_ratio)
        self.stage2 = reg_stage(config.depth, hidden, hidden, config.se_ratio)
        self.readout = build_mlp(config.mlp_depth, hidden, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm), tokens in row-major order over the pooled grid."""
        self._check_input(x)
        x = self.pos_emb(x)
        b, _, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, *self.grid)  # (B, C, H, W)
        # pooled to the M it emits now (as built; an elastic subclass's `emitting` changes it)
        x = nn.functional.adaptive_avg_pool2d(self.stage1(x), math.isqrt(self.num_visual_tokens))
        x = self.stage2(x)  # (B, hidden, sqrt M, sqrt M)
        x = x.flatten(2).transpose(1, 2)  # (B, M, hidden)
        return self.readout(x)
