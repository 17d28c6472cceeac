"""Counting what a projector costs: parameters and forward FLOPs. No printing, no side effects on the module.

Build on the meta device to count a full-size projector without allocating its weights::

    with torch.device("meta"):
        proj = build_projector("resampler", {"num_visual_tokens": 144}, 1024, 4096, (16, 16))
    count_parameters(proj), projector_flops(proj)
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from projlab.projectors.base import PositionalEmbedding


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of `module` as built (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_positional_parameters(module: nn.Module) -> int:
    """Parameters held by the learnable positional embeddings (`PositionalEmbedding`) inside `module`."""
    return sum(count_parameters(m) for m in module.modules() if isinstance(m, PositionalEmbedding))


# Attention kernels FlopCounterMode has no formula for (their FLOPs are a plain SDPA's): on the CPU,
# scaled_dot_product_attention runs `_scaled_dot_product_flash_attention_for_cpu`, which would count 0.
def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


EXTRA_FLOP_FORMULAS = {
    getattr(torch.ops.aten, op): _sdpa_flops
    for op in ("_scaled_dot_product_flash_attention_for_cpu",)
    if hasattr(torch.ops.aten, op)
}


def forward_flops(forward) -> int:
    """FLOPs of one call of `forward` (matmuls, convolutions, attention; a multiply-add counts 2)."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        forward()
    return int(counter.get_total_flops())


def _device_and_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for t in (*module.parameters(), *module.buffers()):
        return t.device, t.dtype if t.is_floating_point() else torch.get_default_dtype()
    return torch.device("meta"), torch.get_default_dtype()  # no weights (blind): any device will do


def _forward_flops(projector: nn.Module, batch: int, device: torch.device, dtype: torch.dtype) -> int:
    x = torch.randn(batch, projector.num_patches, projector.vision_dim, device=device, dtype=dtype)
    was_training = projector.training
    flags = [(p, p.requires_grad) for p in projector.parameters()]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        projector.eval()
        # nn.MultiheadAttention's fused inference fast path (self-attention, eval) would hide its matmuls
        torch.backends.mha.set_fastpath_enabled(False)
        # Frozen and no_grad: FlopCounterMode's module tracker trips over parameter views made under no_grad
        # while the parameters still require grad ("Expected gradient function to be set").
        for p, _ in flags:
            p.requires_grad_(False)
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
            projector(x)
        return int(counter.get_total_flops())
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for p, flag in flags:
            p.requires_grad_(flag)
        projector.train(was_training)


def projector_flops(projector: nn.Module, batch: int = 1) -> int:
    """Forward FLOPs per sample (a multiply-add counts 2) of `projector`, on a random batch of `batch` samples.

    Counts what `torch.utils.flop_counter.FlopCounterMode` counts: matrix multiplies, convolutions and
    attention; element-wise work, normalisation, softmax and `grid_sample` are not counted. Runs on the
    projector's own device, the meta device included (no memory, no compute); if a meta run fails, a copy
    is materialised on the CPU (uninitialised weights: the count does not depend on their values).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    device, dtype = _device_and_dtype(projector)
    try:
        total = _forward_flops(projector, batch, device, dtype)
    except Exception:
        if device.type != "meta":
            raise
        cpu_copy = copy.deepcopy(projector).to_empty(device="cpu")
        total = _forward_flops(cpu_copy, batch, torch.device("cpu"), dtype)
    return total // batch


# A training step's FLOPs from its forward's: the backward computes the gradients of the inputs and of the
# weights, each a product the size of the forward's (the convention MFU is quoted in; recomputation that
# activation checkpointing adds is hardware work, not counted)
BACKWARD_FACTOR = 2


def training_flops(forward: int) -> int:
    """FLOPs of a training step whose forward counts `forward` FLOPs (`forward_flops`)."""
    return (1 + BACKWARD_FACTOR) * forward


def mfu(forward: int, seconds: float, peak_tflops: float) -> float:
    """Model FLOP utilisation of a training step: its FLOPs (`training_flops`) per second, over the device's
    peak FLOP/s."""
    return training_flops(forward) / seconds / (peak_tflops * 1e12)
