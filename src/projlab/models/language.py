"""The LLM: any `AutoModelForCausalLM` with its tokenizer, and an `<image>` token that marks where the
visual tokens go (it is never embedded: the model writes the visual tokens over it)."""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from projlab.data.conversation import IMAGE_TOKEN
from projlab.models import attention  # noqa: F401  (registers the sdpa_cpu_fp32 attention)
from projlab.models.hub import load_pretrained


class LanguageModel(nn.Module):
    def __init__(
        self, name_or_path: str, dtype: torch.dtype | None = None, attn_implementation: str | None = None
    ) -> None:
        super().__init__()
        self.tokenizer: PreTrainedTokenizerBase = load_pretrained(
            AutoTokenizer.from_pretrained, name_or_path, "tokenizer"
        )
        self.model = load_pretrained(
            AutoModelForCausalLM.from_pretrained, name_or_path, "language model", dtype=dtype,
            attn_implementation=attn_implementation,
        )
        self.name_or_path = name_or_path
        if IMAGE_TOKEN not in self.tokenizer.get_vocab():
            self.tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.unk_token or self.tokenizer.eos_token
        self.image_token_id: int = self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.hidden_size: int = self.model.config.hidden_size

    def decoder_layers(self) -> list[nn.Module]:
        """The blocks a sharding strategy wraps one by one."""
        return list(self.model.model.layers)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, T, C_llm); image-token positions get a placeholder (overwritten later)."""
        safe = input_ids.masked_fill(input_ids == self.image_token_id, self.tokenizer.pad_token_id)
        return self.model.get_input_embeddings()(safe)
