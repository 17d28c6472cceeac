"""What a model costs per sample: parameters, FLOPs, sequence length (derived from the model as built).

FLOPs are counted in one place, `projlab.projectors.accounting.forward_flops` (torch's FlopCounterMode; a
multiply-add counts 2): results.json and `make bench` both take them from here.
"""
from __future__ import annotations

import torch

from projlab.data.conversation import Conversation
from projlab.data.prompt import TextProcessor
from projlab.data.spatial import Item
from projlab.models.mllm import MLLM
from projlab.models.token_sets import at_each_m, is_elastic
from projlab.projectors.accounting import count_parameters as _params
from projlab.projectors.accounting import forward_flops, projector_flops


def llm_forward_flops(model: MLLM, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
    """Forward FLOPs of the LLM on a batch, its visual tokens given (zeros): every matmul, the LM head's
    included (tied to the embeddings or not), and the attention (SDPA's formula: Q K^T and A V). Embedding
    lookups, norms, activations, softmax and the loss are element-wise and not counted."""
    visual = torch.zeros(input_ids.shape[0], model.num_visual_tokens, model.llm.hidden_size,
                         device=input_ids.device)
    return forward_flops(lambda: model(input_ids, attention_mask, visual))


def model_efficiency(model: MLLM, processor: TextProcessor, item: Item | Conversation) -> dict:
    """Parameter counts (trainable as set by the freeze policy), the projector's and the LLM's forward FLOPs
    per sample (the LLM's at this item's sequence length) and that length; for an elastic projector the
    per-sample costs at every M of its set too (`by_tokens`)."""
    out = {
        "params_total": _params(model),
        "params_trainable": _params(model, trainable_only=True),
        "projector_params": _params(model.projector),
        **per_sample_costs(model, processor, item),
    }
    if is_elastic(model.projector):
        costs = at_each_m(model.projector, processor, lambda p: per_sample_costs(model, p, item))
        out["by_tokens"] = {str(m): c for m, c in costs.items()}
    return out


def per_sample_costs(model: MLLM, processor: TextProcessor, item: Item | Conversation) -> dict:
    """The projector's and the LLM's forward FLOPs per sample at the M the projector emits now (the LLM's at
    this item's sequence length), and that length."""
    ids = processor.encode(item)["input_ids"]
    device = next(model.llm.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    return {
        "projector_flops": projector_flops(model.projector),
        "llm_seq_len": len(ids),
        "llm_flops": llm_forward_flops(model, input_ids, torch.ones_like(input_ids)),
        "num_visual_tokens": model.num_visual_tokens,
    }
