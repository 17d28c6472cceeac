"""What a model costs per sample: parameters, FLOPs, sequence length (derived from the model as built)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from projlab.data.prompt import TextProcessor
from projlab.data.spatial import Item
from projlab.models.mllm import MLLM


def _params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def projector_flops(model: MLLM) -> int:
    """Forward FLOPs of the projector on one image (counted by torch's FLOP counter)."""
    x = torch.zeros(1, model.projector.num_patches, model.projector.vision_dim, device=model.feature_norm.mean.device)
    counter = FlopCounterMode(display=False)
    was = model.projector.training
    model.projector.eval()
    with counter:
        model.projector(x)
    model.projector.train(was)
    return int(counter.get_total_flops())


def model_efficiency(model: MLLM, processor: TextProcessor, item: Item) -> dict:
    """Parameter counts (trainable as set by the freeze policy), projector FLOPs, LLM sequence length and
    LLM forward FLOPs per sample (2 x non-embedding parameters x tokens)."""
    seq_len = len(processor.example(item.question, item.answer_text)["input_ids"])
    llm_params = _params(model.llm.model) - model.llm.model.get_input_embeddings().weight.numel()
    return {
        "params_total": _params(model),
        "params_trainable": _params(model, trainable_only=True),
        "projector_params": _params(model.projector),
        "projector_flops": projector_flops(model),
        "llm_seq_len": seq_len,
        "llm_flops": 2 * llm_params * seq_len,
        "num_visual_tokens": model.num_visual_tokens,
    }
