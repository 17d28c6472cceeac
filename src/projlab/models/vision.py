"""The vision tower: any Hugging Face vision encoder (CLIP, SigLIP), read at one hidden layer.

Returns the patch grid (B, N, C_vision) with the CLS token dropped, and exposes `grid` = (rows, cols).
Images reach it through the tower's own image processor (`image_processing`), made square as
`image_aspect` says.
A frozen tower is a feature extractor: it computes in float32 whatever autocast is around it and hands out
its features rounded to `feature_dtype` (float16 by default, the feature cache's dtype), so the cached
and the live path give the same numbers.
"""
from __future__ import annotations

import torch
from PIL import Image
from torch import nn
from transformers import AutoConfig, CLIPVisionModel, SiglipVisionModel

from projlab.errors import UserError
from projlab.models.hub import load_pretrained
from projlab.models.image_processing import check_aspect, load_image_processor, pixel_values

# model_type -> (class, has a CLS token)
_TOWERS: dict[str, tuple[type, bool]] = {
    "clip": (CLIPVisionModel, True),
    "clip_vision_model": (CLIPVisionModel, True),
    "siglip": (SiglipVisionModel, False),
    "siglip_vision_model": (SiglipVisionModel, False),
}

FEATURE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class VisionTower(nn.Module):
    def __init__(
        self, name_or_path: str, feature_layer: int = -1, resolution: int | None = None,
        feature_dtype: str = "float16", image_aspect: str = "resize",
    ) -> None:
        super().__init__()
        if feature_dtype not in FEATURE_DTYPES:
            raise UserError(f"vision.feature_dtype={feature_dtype!r} is not allowed; use {', '.join(FEATURE_DTYPES)}")
        self.feature_dtype = FEATURE_DTYPES[feature_dtype]
        self.image_aspect = check_aspect(image_aspect)
        config = load_pretrained(AutoConfig.from_pretrained, name_or_path, "vision tower")
        if config.model_type not in _TOWERS:
            raise UserError(
                f"vision tower '{name_or_path}' is a {config.model_type!r} model; supported: {', '.join(_TOWERS)}"
            )
        cls, self.has_cls = _TOWERS[config.model_type]
        self.model = load_pretrained(cls.from_pretrained, name_or_path, "vision tower")
        vcfg = self.model.config
        self.name_or_path = name_or_path
        self.patch_size: int = vcfg.patch_size
        self.native_resolution: int = vcfg.image_size
        self.resolution: int = int(resolution or vcfg.image_size)
        if self.resolution % self.patch_size:
            raise UserError(
                f"resolution {self.resolution} is not divisible by the patch size {self.patch_size} of "
                f"'{name_or_path}'; use a multiple of {self.patch_size}"
            )
        layers = vcfg.num_hidden_layers
        if not -layers <= feature_layer <= layers or feature_layer == 0:
            raise UserError(f"feature_layer={feature_layer} is not allowed; use 1..{layers} or -1..-{layers}")
        self.feature_layer = feature_layer
        self.hidden_size: int = vcfg.hidden_size
        side = self.resolution // self.patch_size
        self.grid: tuple[int, int] = (side, side)
        self.processor = load_image_processor(name_or_path)

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        """PIL images -> normalised pixel values (B, 3, R, R) at the run's resolution."""
        return pixel_values(self.processor, images, self.resolution, self.image_aspect)

    @property
    def frozen(self) -> bool:
        return not any(p.requires_grad for p in self.model.parameters())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) -> patch features (B, N, C_vision), N = rows * cols, CLS dropped (in `feature_dtype`
        when the tower is frozen)."""
        if not self.frozen:
            return self._patches(pixel_values)
        with torch.autocast(pixel_values.device.type, enabled=False):
            return self._patches(pixel_values).to(self.feature_dtype)

    def _patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(
            pixel_values=pixel_values.to(self.model.dtype),
            output_hidden_states=True,
            interpolate_pos_encoding=self.resolution != self.native_resolution,
        )
        h = out.hidden_states[self.feature_layer]
        return h[:, 1:] if self.has_cls else h


class FeatureNorm(nn.Module):
    """Per-channel standardisation of the features, with statistics from the training images.

    One setting for every arm of a study ("standardize" or "none"); the statistics are buffers, so they
    travel with the checkpoint.
    """

    def __init__(self, dim: int, mode: str = "none") -> None:
        super().__init__()
        if mode not in ("none", "standardize"):
            raise UserError(f"feature_norm={mode!r} is not allowed; use 'none' or 'standardize'")
        self.mode = mode
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features in any dtype (float16 from a frozen tower or its cache) -> float32, standardised or not."""
        x = x.float()
        if self.mode == "none":
            return x
        return (x - self.mean) / self.std
