"""`make bench-gpu`: its refusal where there is no GPU, its FLOP count against the LLM's and projector's
matmuls worked out by hand on the tiny preset, and its MFU and peak arithmetic."""
from __future__ import annotations

import subprocess

import pytest
import torch
from torch import nn

from conftest import python
from projlab import build
from projlab.bench.gpu import peak_tflops_for, step_forward_flops, summarise, synthetic_batch
from projlab.config import load_config
from projlab.errors import UserError
from projlab.projectors.accounting import projector_flops


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_refuses_without_a_gpu_in_one_line():
    res = subprocess.run([python(), "-m", "projlab.bench.gpu", "--steps", "1"], capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: make bench-gpu needs a CUDA GPU: torch sees none on this machine"]


def test_flops_and_mfu_of_a_tiny_step(cache_dir):
    model = build.model(load_config([]))
    m, b, t = model.num_visual_tokens, 2, model.num_visual_tokens + 1 + 12
    batch = synthetic_batch(model, b, t)
    assert batch["input_ids"].shape == (b, t) and (batch["input_ids"] == model.llm.image_token_id).sum() == b * m
    assert (batch["labels"][:, : m + 1] == -100).all() and (batch["labels"][:, m + 1 :] >= 0).all()

    llm = model.llm.model
    cfg = llm.config
    linear = sum(mod.in_features * mod.out_features for mod in llm.modules() if isinstance(mod, nn.Linear))
    # every matmul 2 x tokens x weights (the LM head's too); attention: Q K^T and A V, 2 x B x T^2 x width each
    expected_llm = 2 * b * t * linear + cfg.num_hidden_layers * 4 * b * t * t * cfg.hidden_size
    forward = step_forward_flops(model, batch, "bf16-mixed")
    assert forward == expected_llm + b * projector_flops(model.projector)

    r = summarise(forward, step_s=0.5, tokens=b * t, peak_tflops=100.0)
    assert r["step_flops"] == 3 * forward and r["tokens_per_s"] == b * t / 0.5
    assert r["mfu"] == pytest.approx(3 * forward / 0.5 / 100e12)
    assert r["achieved_tflops"] == pytest.approx(r["mfu"] * 100.0)


def test_card_peaks_from_device_names():
    assert peak_tflops_for("NVIDIA H100 80GB HBM3", None) == 989.0
    assert peak_tflops_for("NVIDIA H100 PCIe", None) == 756.0
    assert peak_tflops_for("NVIDIA H200", None) == 989.0
    assert peak_tflops_for("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert peak_tflops_for("NVIDIA L4", 121.0) == 121.0
    with pytest.raises(UserError, match="give --peak-tflops"):
        peak_tflops_for("NVIDIA L4", None)
