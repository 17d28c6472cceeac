"""The machine's matmul peak, measured: the roofline the bench reads every achieved FLOP/s against.

torch's own matmul, timed per precision (float32, and bfloat16 for bf16-mixed) on a square 2048 x 2048
product and on the tiny model's own shapes (its LLM's MLP, tokens x width @ width x FFN and back, at the
bench's batch): the peak of a precision is the best of those. A fraction of that peak says how much of
what the hardware does for a matmul a training step gets; the rest is attention, element-wise work,
precision casts and the optimiser, which the profile attributes.
"""
from __future__ import annotations

import statistics

import torch

from projlab.bench.timing import Clock

SQUARE = 2048
DTYPES = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}


def matmul_gflops(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    """Median GFLOP/s of (m x k) @ (k x n) in `dtype` (2 m k n FLOPs per product)."""
    clock = Clock(device)
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    calls = max(1, int(2e9 // (2 * m * k * n)))  # ~2 GFLOP per timed sample: long enough for the clock
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = clock()
        for _ in range(calls):
            a @ b
        times.append((clock() - t0) / calls)
    return 2 * m * k * n / statistics.median(times) / 1e9


def peaks(device: torch.device, model_shapes: dict[str, tuple[int, int, int]], precisions: tuple[str, ...],
          repeats: int = 5) -> dict[str, dict]:
    """Per precision: GFLOP/s of the square product and of each model shape, and the peak (their best)."""
    out = {}
    for precision in precisions:
        dtype = DTYPES[precision]
        shapes = {f"square {SQUARE}": (SQUARE, SQUARE, SQUARE), **model_shapes}
        measured = {name: matmul_gflops(*shape, dtype, device, repeats) for name, shape in shapes.items()}
        out[precision] = {"dtype": str(dtype).removeprefix("torch."), "shapes": {k: list(v) for k, v in shapes.items()},
                          "gflops": measured, "peak_gflops": max(measured.values())}
    return out


def llm_shapes(tokens: int, width: int, ffn: int) -> dict[str, tuple[int, int, int]]:
    """The LLM MLP's two products at `tokens` rows (batch x sequence)."""
    return {f"LLM MLP up {tokens}x{width} @ {width}x{ffn}": (tokens, width, ffn),
            f"LLM MLP down {tokens}x{ffn} @ {ffn}x{width}": (tokens, ffn, width)}
