"""The paper configuration's projectors (ViT-L/14 features, 1024 wide, into a 4096-wide LLM) on grids 16x16
(224 px) and 24x24 (336 px), at M = 144 (N for the per-patch projectors; N / 4 for the block projectors on
16x16, where 144 is no N / r^2): parameters and FLOPs per sample
(counted on the meta device, no memory) and forward+backward time at a small batch.

They are big (the resampler and the Q-Former hold over 100M parameters each), so they are built, timed and
freed one at a time, with few repeats; projectors left out of `timed` get counts only.
"""
from __future__ import annotations

import gc

import torch

from projlab.bench.arms import PROJECTORS, arm_specs, projector_settings
from projlab.bench.loop import autocast
from projlab.bench.timing import Clock, summary
from projlab.projectors import build_projector
from projlab.projectors.accounting import count_parameters, projector_flops

VISION_DIM, LLM_DIM = 1024, 4096
GRIDS = ((16, 16), (24, 24))
TOKENS = 144


def _time(proj: torch.nn.Module, batch: int, warmup: int, repeats: int, device: torch.device,
          precision: str) -> list[float]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, proj.num_patches, proj.vision_dim, generator=g).to(device)
    grad = torch.randn(batch, proj.num_visual_tokens, proj.llm_dim, generator=g).to(device)
    clock = Clock(device)
    times = []
    for r in range(warmup + repeats):
        t0 = clock()
        with autocast(device, precision):
            y = proj(x)
        y.backward(grad.to(y.dtype))
        proj.zero_grad(set_to_none=True)
        if r >= warmup:
            times.append(clock() - t0)
    return times


def bench_paper(
    batch: int, repeats: int, timed: tuple[str, ...], device: torch.device, precision: str,
    warmup: int = 1, projectors: tuple[str, ...] = PROJECTORS,
) -> list[dict]:
    records = []
    for grid in GRIDS:
        for spec in arm_specs((TOKENS,), projectors, grid):
            knobs = projector_settings(spec.projector, spec.tokens)
            with torch.device("meta"):
                meta = build_projector(spec.projector, knobs, VISION_DIM, LLM_DIM, grid)
            record = {
                "projector": spec.projector,
                "grid": f"{grid[0]}x{grid[1]}",
                "num_visual_tokens": meta.num_visual_tokens,
                "params": count_parameters(meta),
                "forward_flops_per_sample": projector_flops(meta),
                "batch_size": batch,
                "time_s": None,
            }
            if spec.projector in timed:
                torch.manual_seed(0)
                proj = build_projector(spec.projector, knobs, VISION_DIM, LLM_DIM, grid).to(device).train()
                record["time_s"] = summary(_time(proj, batch, warmup, repeats, device, precision))
                del proj
                gc.collect()
            records.append(record)
    return records

