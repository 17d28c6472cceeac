"""Multi-scale deformable attention (Deformable DETR) in plain PyTorch, built on `F.grid_sample`.

Runs on any device and dtype, with no compiled kernel. Checked numerically against transformers'
`DeformableDetrMultiscaleDeformableAttention` in the tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def deformable_sample(
    value: torch.Tensor,
    shapes: list[tuple[int, int]],
    locations: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Weighted bilinear samples of `value` at `locations`.

    value: (B, S, heads, d) with S = sum(h * w) over `shapes` (levels, each (h, w));
    locations: (B, Q, heads, levels, points, 2) as (x, y) in [0, 1]; weights: (B, Q, heads, levels, points).
    Returns (B, Q, heads * d).
    """
    b, _, heads, d = value.shape
    _, q, _, levels, points, _ = locations.shape
    grids = 2 * locations - 1  # grid_sample's [-1, 1] coordinates
    sampled = []
    for level, (h, w) in enumerate(shapes):
        start = sum(hh * ww for hh, ww in shapes[:level])
        v = value[:, start : start + h * w]  # (B, h*w, heads, d)
        v = v.permute(0, 2, 3, 1).reshape(b * heads, d, h, w)
        g = grids[:, :, :, level].transpose(1, 2).reshape(b * heads, q, points, 2)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(sampled, dim=-2)  # (B*heads, d, Q, levels, points)
    w = weights.transpose(1, 2).reshape(b * heads, 1, q, levels, points)
    out = (stacked * w).sum((-1, -2))  # (B*heads, d, Q)
    return out.reshape(b, heads * d, q).transpose(1, 2)


class MultiScaleDeformableAttention(nn.Module):
    """Each query attends to `points` sampled locations per head and level around its reference point."""

    def __init__(self, dim: int, heads: int = 8, levels: int = 1, points: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.dim, self.heads, self.levels, self.points = dim, heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's init: offsets start on a ring of directions, growing with the point index."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.heads, dtype=torch.float32) * (2.0 * torch.pi / self.heads)
        ring = torch.stack([theta.cos(), theta.sin()], -1)
        ring = ring / ring.abs().max(-1, keepdim=True).values
        ring = ring.view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        ring = ring * torch.arange(1, self.points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(ring.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """query (B, Q, C) (position already added); reference_points (B, Q, levels, 2) as (x, y) in [0, 1];
        value (B, S, C) flattened over `shapes`. Returns (B, Q, C)."""
        b, q, _ = query.shape
        v = self.value_proj(value).view(b, value.shape[1], self.heads, self.dim // self.heads)
        offsets = self.sampling_offsets(query).view(b, q, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(b, q, self.heads, self.levels * self.points)
        weights = weights.softmax(-1).view(b, q, self.heads, self.levels, self.points)
        # offsets are in units of the level's cells: normalise by (w, h)
        normaliser = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype, device=query.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        return self.output_proj(deformable_sample(v, shapes, locations, weights))
