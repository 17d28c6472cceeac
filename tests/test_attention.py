"""The LLM's attention under CPU bf16 autocast runs in float32 (`projlab.models.attention`)."""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import LlamaConfig, LlamaForCausalLM

from projlab.models import attention


class _AttentionDtypes(TorchDispatchMode):
    """Records the dtypes of every tensor that reaches an SDPA kernel (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, set[torch.dtype]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "scaled_dot_product" in str(func):
            floats = {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
            self.seen.append((str(func), floats))
        return func(*args, **(kwargs or {}))


def _llama(implementation: str) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    config._attn_implementation = implementation
    return LlamaForCausalLM(config)


def test_under_cpu_bf16_autocast_the_attention_kernels_see_float32_only():
    """Llama's rotary embedding hands SDPA a float32 query and key under autocast while the value is bf16; the
    kernel must still run (forward and backward) in float32, the CPU's fast flash path at small head widths."""
    model = _llama(attention.NAME)
    ids = torch.randint(0, 32, (3, 20))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # padding: SDPA gets an explicit mask, as in a padded batch
    record = _AttentionDtypes()
    with record, torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        out.loss.backward()
    assert [name for name, _ in record.seen if "backward" in name], "no SDPA backward kernel ran"
    assert all(dtypes == {torch.float32} for _, dtypes in record.seen), record.seen
    assert torch.isfinite(out.loss)


def test_outside_autocast_it_is_transformers_sdpa_unchanged():
    ids = torch.randint(0, 32, (2, 12))
    ours, reference = _llama(attention.NAME), _llama("sdpa")
    torch.testing.assert_close(ours(input_ids=ids).logits, reference(input_ids=ids).logits, rtol=0, atol=0)
