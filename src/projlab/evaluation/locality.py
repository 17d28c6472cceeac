"""Locality diagnostics of a projector, measured at the LLM's input on a fixed batch of images.

`norm_ratio`: the mean L2 norm of the visual tokens the projector writes into the LLM's input, over the mean
L2 norm of the LLM's own text-token embeddings in the same sequences (every non-image, non-padding token of
the question-and-answer prompt). Far from 1, one modality dominates the first layer's residual stream.

`knn_overlap`: whether the projector keeps which patches resemble which. For each output token i, its k
nearest neighbours among the other output tokens of its image (cosine similarity) are compared with the k
nearest neighbours of the input it came from among the other inputs; the overlap is the shared fraction,
|kNN_out(i) ∩ kNN_in(i)| / k, averaged over tokens and images. The inputs are the projector's own input
(the tower's patch features after the feature norm) average-pooled to the output grid (adaptive average
pooling to h x w = M, h / w closest to the patch grid's aspect; M = N keeps the patches): a pooling
projector's token i came from pooled cell i. A learned-query projector has no grid, and the figure is still
defined this way, its token i set against pooled cell i in row-major order: there it measures how far its
queries happen to keep the grid's order and similarity, and sits near chance when they keep neither. 1.0:
the same neighbourhoods (any map that preserves cosine similarity, e.g. a scaled rotation, gives 1.0);
`knn_chance` = k / (M - 1): the expected overlap of a random permutation of the tokens. k = K = 5 (M - 1
where M <= 5); undefined (None) for M < 2.
"""
from __future__ import annotations

import math

import torch
from torch import nn

K = 5


def output_grid(m: int, grid: tuple[int, int]) -> tuple[int, int]:
    """(h, w) with h * w = M whose aspect h / w is closest to the patch grid's (the grid itself for M = N)."""
    rows, cols = grid
    pairs = [(h, m // h) for h in range(1, m + 1) if m % h == 0]
    return min(pairs, key=lambda hw: (abs(math.log(hw[0] / hw[1]) - math.log(rows / cols)), hw[0]))


def pooled_inputs(features: torch.Tensor, grid: tuple[int, int], m: int) -> torch.Tensor:
    """(B, N, C) patch features in row-major order -> (B, M, C) their averages over the output grid's cells."""
    b, _, c = features.shape
    x = features.transpose(1, 2).reshape(b, c, *grid)
    return nn.functional.adaptive_avg_pool2d(x, output_grid(m, grid)).flatten(2).transpose(1, 2)


def knn_sets(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, M, C) -> (B, M, M) boolean: [b, i, j] where token j is one of token i's k nearest other tokens
    (cosine similarity; a token is never its own neighbour)."""
    unit = nn.functional.normalize(x.float(), dim=-1)
    sim = unit @ unit.transpose(1, 2)
    sim.diagonal(dim1=1, dim2=2).fill_(float("-inf"))
    nearest = sim.topk(k, dim=-1).indices
    return torch.zeros_like(sim, dtype=torch.bool).scatter_(-1, nearest, True)


def knn_k(m: int, k: int = K) -> int | None:
    """The k used for M tokens (M - 1 where fewer than k others; None where M < 2)."""
    return min(k, m - 1) if m >= 2 else None


def knn_overlap(before: torch.Tensor, after: torch.Tensor, k: int = K) -> float | None:
    """Mean over tokens and images of |kNN_after(i) ∩ kNN_before(i)| / k; before (B, M, C), after (B, M, D)."""
    if before.shape[:2] != after.shape[:2]:
        raise ValueError(f"token counts differ: {tuple(before.shape)} and {tuple(after.shape)}")
    kk = knn_k(before.shape[1], k)
    if kk is None:
        return None
    shared = (knn_sets(before, kk) & knn_sets(after, kk)).sum(-1).float() / kk
    return float(shared.mean())


def knn_chance(m: int, k: int = K) -> float | None:
    """The expected overlap of a random permutation of M tokens: k / (M - 1)."""
    kk = knn_k(m, k)
    return None if kk is None else kk / (m - 1)


def mean_norm(x: torch.Tensor) -> float:
    """Mean L2 norm of the vectors along the last dimension."""
    return float(x.float().norm(dim=-1).mean())


@torch.no_grad()
def locality(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, features: torch.Tensor,
             k: int = K) -> dict | None:
    """The diagnostics of `model` (an MLLM) on one batch: features (B, N, C_vision) as the tower gives them,
    input_ids / attention_mask (B, T) the same images' question-and-answer sequences with M image tokens.
    None for a projector that emits no tokens."""
    m = model.num_visual_tokens
    if not m:
        return None
    inputs = model.feature_norm(features)
    visual = model.projector(inputs)  # (B, M, C_llm): what is written over the image tokens
    text = (input_ids != model.llm.image_token_id) & attention_mask.bool()
    text_embeds = model.llm.embed(input_ids)[text]  # (T_text, C_llm)
    vision_norm, text_norm = mean_norm(visual), mean_norm(text_embeds)
    before = pooled_inputs(inputs, model.projector.grid, m)
    return {
        "norm_ratio": vision_norm / text_norm,
        "vision_norm": vision_norm,
        "text_norm": text_norm,
        "knn_overlap": knn_overlap(before, visual, k),
        "knn_chance": knn_chance(m, k),
        "knn_k": knn_k(m, k),
        "images": int(features.shape[0]),
    }
