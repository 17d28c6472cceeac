"""`sdpa_cpu_fp32`: the LLM's attention as transformers' SDPA, run in float32 on the CPU under bf16.

On the CPU, torch's flash-attention kernel is about 3x slower in bfloat16 than in float32 at the tiny LLM's
head width (32; measured fwd+bwd, batch 32, 4 heads, 161 tokens: 36 ms float32, 106 ms bfloat16, 39 ms for
bf16 matmul + softmax), so under bf16 autocast the query, key and value are upcast and the output cast
back. The autocast state decides, not the query's dtype: Llama's rotary embedding returns a float32 query and
key under autocast, which autocast would cast down inside SDPA (the recipe's step at M = 144 once spent 36% of
its time in that bf16 backward). Anywhere else (float32, CUDA) it is transformers' own `sdpa`, unchanged; the
masks are SDPA's.
Registered with transformers' attention interfaces on import, so `attn_implementation="sdpa_cpu_fp32"`
works with `from_pretrained` like a built-in name.
"""
from __future__ import annotations

import torch
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "sdpa_cpu_fp32"


def sdpa_cpu_fp32(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, **kwargs):
    """query, key, value (B, heads, T, head_dim) -> (attention output (B, T, heads, head_dim), None)."""
    autocast = torch.is_autocast_enabled("cpu")
    if query.device.type != "cpu" or (query.dtype == torch.float32 and not autocast):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    dtype = torch.get_autocast_dtype("cpu") if autocast else query.dtype  # what SDPA would have returned
    with torch.autocast("cpu", enabled=False):
        out, weights = sdpa_attention_forward(
            module, query.float(), key.float(), value.float(), attention_mask, **kwargs
        )
    return out.to(dtype), weights


AttentionInterface.register(NAME, sdpa_cpu_fp32)
AttentionMaskInterface.register(NAME, sdpa_mask)
