"""The multimodal LLM: vision tower -> feature norm -> projector (`encode_images`) -> spliced into the LLM's
inputs (`forward`).

Knows nothing of Lightning or of training stages.
"""
from __future__ import annotations

import torch
from torch import nn

from projlab.models.language import LanguageModel
from projlab.models.vision import FeatureNorm, VisionTower
from projlab.projectors import build_projector


class MLLM(nn.Module):
    def __init__(
        self,
        vision: VisionTower,
        llm: LanguageModel,
        projector_name: str,
        projector_knobs: dict | None = None,
        feature_norm: str = "none",
    ) -> None:
        super().__init__()
        self.vision = vision
        self.llm = llm
        self.feature_norm = FeatureNorm(vision.hidden_size, feature_norm)
        self.projector = build_projector(
            projector_name, projector_knobs, vision_dim=vision.hidden_size, llm_dim=llm.hidden_size, grid=vision.grid
        )

    @property
    def num_visual_tokens(self) -> int:
        return self.projector.num_visual_tokens

    def modules_by_name(self) -> dict[str, nn.Module]:
        """The units a freeze policy names: `vision`, `projector`, `llm`."""
        return {"vision": self.vision, "projector": self.projector, "llm": self.llm}

    def sharding_units(self) -> list[nn.Module]:
        """Blocks a sharding strategy wraps one by one (vision layers, LLM decoder layers)."""
        return list(self.vision.model.vision_model.encoder.layers if hasattr(self.vision.model, "vision_model")
                    else self.vision.model.encoder.layers) + self.llm.decoder_layers()

    def encode_images(self, pixel_values: torch.Tensor | None = None,
                      features: torch.Tensor | None = None) -> torch.Tensor | None:
        """Images -> visual tokens (B, M, C_llm): `pixel_values` (B, 3, R, R) through the tower, or the tower's
        `features` (B, N, C_vision) given (a frozen tower's, from the feature cache); then the feature norm and
        the projector. The one place this chain runs. None where the projector emits no tokens (the blind
        control: the tower is not run)."""
        if not self.num_visual_tokens:
            return None
        return self.projector(self.feature_norm(self.vision(pixel_values) if features is None else features))

    def embed_inputs(self, input_ids: torch.Tensor, visual: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> the LLM's input embeddings (B, T, C_llm), the visual tokens (B, M, C_llm) written
        over the image tokens of each sequence that has them (a text-only sequence's row is not read)."""
        embeds = self.llm.embed(input_ids)
        if visual is None:
            return embeds
        slots = input_ids == self.llm.image_token_id
        return embeds.masked_scatter(slots.unsqueeze(-1), visual.to(embeds.dtype)[slots.any(-1)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                visual_tokens: torch.Tensor | None = None, labels: torch.Tensor | None = None):
        """input_ids (B, T) with M image tokens per sample where the visual tokens (B, M, C_llm) of
        `encode_images` go (none in a text-only one) -> the Hugging Face causal-LM output (logits (B, T, V);
        loss where labels are given). Evaluation encodes each image once and scores several options with it."""
        embeds = self.embed_inputs(input_ids, visual_tokens if self.num_visual_tokens else None)
        return self.llm.model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, use_cache=False)
