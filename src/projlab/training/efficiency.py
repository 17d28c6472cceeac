"""What a model costs per sample: parameters, FLOPs, sequence length (derived from the model as built)."""
from __future__ import annotations

from projlab.data.prompt import TextProcessor
from projlab.data.spatial import Item
from projlab.models.mllm import MLLM
from projlab.projectors.accounting import count_parameters as _params
from projlab.projectors.accounting import projector_flops


def model_efficiency(model: MLLM, processor: TextProcessor, item: Item) -> dict:
    """Parameter counts (trainable as set by the freeze policy), projector FLOPs, LLM sequence length and
    LLM forward FLOPs per sample (2 x non-embedding parameters x tokens)."""
    seq_len = len(processor.example(item.question, item.answer_text)["input_ids"])
    llm_params = _params(model.llm.model) - model.llm.model.get_input_embeddings().weight.numel()
    return {
        "params_total": _params(model),
        "params_trainable": _params(model, trainable_only=True),
        "projector_params": _params(model.projector),
        "projector_flops": projector_flops(model.projector),
        "llm_seq_len": seq_len,
        "llm_flops": 2 * llm_params * seq_len,
        "num_visual_tokens": model.num_visual_tokens,
    }
