"""The paper's backbones without their weights: CLIP ViT-L/14-336 and Vicuna-7B v1.5 built from their
published configs with random weights and saved as Hugging Face folders, so the paper's path (`from_pretrained`
from a folder, `train.build_backbones`) runs where no download can: the end-to-end test on the CPU, and
`make bench-gpu` on a machine cut off from the hub.

Built on the meta device and filled once: a 7B-wide layer's own init (a draw per value, then the model's
`_init_weights` drawing again) costs seconds per layer on a CPU, and what these folders serve is the
path and the shapes, not what the weights compute. Every weight matrix holds values of the init's scale
(N(0, initializer_range^2)) read from one random pool tiled through it; norms' scales are 1, biases 0.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

CLIP_L14_336: dict[str, Any] = dict(
    hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336,
    patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768,
)
VICUNA_7B: dict[str, Any] = dict(
    hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, vocab_size=32000,
    tie_word_embeddings=False, hidden_act="silu",
)
POOL = 1_048_573  # a prime: no weight's rows line up with the pool's period


@torch.no_grad()
def fill_random(model: nn.Module, std: float, seed: int = 0) -> None:
    """Every floating tensor of `model`'s state in place: a bias 0, a norm's scale (a 1-D weight) 1, any other
    values of N(0, std^2) taken in turn from a pool of POOL draws (a copy per POOL values, not a draw per value)."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.randn(POOL, generator=g) * std
    pool = torch.cat([pool, pool])  # any window of POOL values, wrapping around, is a plain slice
    start = 0
    for name, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("bias"):
            t.zero_()
        elif t.dim() == 1 and name.endswith("weight"):
            t.fill_(1.0)
        else:
            flat = t.view(-1)
            for i in range(0, flat.numel(), POOL):
                n = min(POOL, flat.numel() - i)
                flat[i : i + n].copy_(pool[start : start + n])
                start = (start + n) % POOL


def _materialise(cls: type, config, dtype: torch.dtype, seed: int) -> nn.Module:
    """`cls(config)` in `dtype` on the CPU with random weights, never initialised value by value."""
    with torch.device("meta"):
        model = cls(config).to(dtype)
    model.to_empty(device="cpu")
    fill_random(model, config.initializer_range, seed)
    config.dtype = dtype
    return model


def save_random_tower(folder: str | Path, seed: int = 0) -> str:
    """CLIP ViT-L/14-336's vision tower (float32, as published) and its image processor in `folder`."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from projlab.models.image_processing import clip_image_processor

    _materialise(CLIPVisionModel, CLIPVisionConfig(**CLIP_L14_336), torch.float32, seed).save_pretrained(folder)
    clip_image_processor(CLIP_L14_336["image_size"]).save_pretrained(folder)
    return str(folder)


def save_random_llm(folder: str | Path, tokenizer, layers: int | None = None, seed: int = 0) -> str:
    """Vicuna-7B (bfloat16, as the recipe loads it) with its first `layers` decoder layers (None: all 32) and
    `tokenizer` (its ids become the model's pad/bos/eos) in `folder`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    config = LlamaConfig(**{**VICUNA_7B, "num_hidden_layers": layers or VICUNA_7B["num_hidden_layers"]}, **ids)
    _materialise(LlamaForCausalLM, config, torch.bfloat16, seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
