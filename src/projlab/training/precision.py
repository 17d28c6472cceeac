"""`trainer.precision: auto`: bf16 autocast where the hardware computes bf16 natively, else float32.

Detected, never assumed: on CUDA, the device's own bf16 support; on an x86 CPU, the instruction-set flags
that give bf16 dot products (AVX512_BF16, AMX-BF16), read from /proc/cpuinfo. An AVX-512 CPU without them
emulates bf16 and gains nothing, so it stays in float32. `make bench` measures what each precision gives on
the machine at hand. The resolved value (never "auto") is what a run records and what every arm of a sweep
is given, so the arms of one ablation always share it.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from projlab.errors import UserError

PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-mixed", "64-true")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo does not exist."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16(device_type: str) -> bool:
    """Whether `device_type` ("cpu" or "cuda") computes bf16 matmuls natively."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


def device_type(accelerator: str) -> str:
    """The device a Lightning `accelerator` setting lands on."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def resolve_precision(precision: str | int, accelerator: str = "auto") -> str:
    """A Lightning precision string for `precision` ("auto" resolved for the accelerator); a UserError for a
    value Lightning does not take."""
    value = str(precision)
    if value == "auto":
        return "bf16-mixed" if native_bf16(device_type(accelerator)) else "32-true"
    if value not in PRECISIONS:
        raise UserError(f"trainer.precision={value!r} is not allowed; use auto, {', '.join(PRECISIONS)}")
    return value
