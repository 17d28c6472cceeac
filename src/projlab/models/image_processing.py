"""Pixels for the vision tower: the tower's own Hugging Face image processor, and how an image that is not
square becomes the tower's R x R input (`image_aspect`):

- resize: squash the whole image to R x R (nothing lost; a wide image's shapes are narrowed);
- crop: the processor's shortest-side resize to R, then a centre crop (CLIP's own; a wide image loses its sides);
- pad: LLaVA-1.5's expand-to-square, bands of the processor's mean colour around the image, then resize
  (nothing lost, nothing distorted; the content is smaller).

A square image gives the same pixels in every mode. The processor runs on its PIL backend even where
torchvision is installed: torchvision's bicubic differs from PIL's in the last bits, and the feature cache
and a run's numbers must not depend on which library happens to be there.
"""
from __future__ import annotations

import torch
from PIL import Image
from transformers import AutoImageProcessor, CLIPImageProcessorPil

from projlab.errors import UserError
from projlab.models.hub import load_pretrained

IMAGE_ASPECTS = ("resize", "crop", "pad")


def check_aspect(aspect: str) -> str:
    if aspect not in IMAGE_ASPECTS:
        raise UserError(f"vision.image_aspect={aspect!r} is not allowed; use {', '.join(IMAGE_ASPECTS)}")
    return aspect


def load_image_processor(name_or_path: str):
    """The processor saved with the tower (preprocessor_config.json), on its PIL backend."""
    return load_pretrained(AutoImageProcessor.from_pretrained, name_or_path, "image processor", backend="pil")


def clip_image_processor(resolution: int) -> CLIPImageProcessorPil:
    """CLIP's processor (its mean, std and bicubic resampling) at `resolution`: what a preset built from a
    config saves beside its tower."""
    side = {"height": resolution, "width": resolution}
    return CLIPImageProcessorPil(size={"shortest_edge": resolution}, crop_size=side)


def mean_colour(processor) -> tuple[int, int, int]:
    """The processor's mean as an RGB colour (LLaVA-1.5's padding): it normalises to about zero."""
    return tuple(int(m * 255) for m in processor.image_mean)


def expand_to_square(image: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """`image` centred on a square of `colour`, its side the image's longer one."""
    w, h = image.size
    if w == h:
        return image
    square = Image.new(image.mode, (max(w, h),) * 2, colour)
    square.paste(image, ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
    return square


def pixel_values(processor, images: list[Image.Image], resolution: int, aspect: str) -> torch.Tensor:
    """PIL images -> normalised pixel values (B, 3, R, R), R = `resolution`, made square as `aspect` says."""
    images = [im.convert("RGB") for im in images]
    square = {"size": {"height": resolution, "width": resolution}, "do_center_crop": False}
    if check_aspect(aspect) == "crop":
        settings = {"size": {"shortest_edge": resolution}, "crop_size": {"height": resolution, "width": resolution},
                    "do_center_crop": True}
    elif aspect == "pad":
        images = [expand_to_square(im, mean_colour(processor)) for im in images]
        settings = square
    else:
        settings = square
    return processor(images=images, return_tensors="pt", **settings)["pixel_values"]
