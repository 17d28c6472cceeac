"""What reaches the tower: pixels from the tower's own image processor, a non-square image made square as
`vision.image_aspect` says, the built-in benchmark's square scenes exactly as before, and a feature cache
that tells the modes apart."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from projlab.data import spatial
from projlab.models.features import cache_key
from projlab.models.image_processing import IMAGE_ASPECTS
from projlab.models.presets import ensure_tiny_tower
from projlab.models.vision import VisionTower

RED, WHITE, GREEN = (230, 20, 20), (255, 255, 255), (20, 200, 20)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def towers(cache_dir) -> dict[str, VisionTower]:
    path = ensure_tiny_tower(cache_dir)  # saved with its processor, loaded back as any tower is
    return {aspect: VisionTower(path, feature_layer=-2, image_aspect=aspect) for aspect in IMAGE_ASPECTS}


def rgb(pixels: torch.Tensor) -> np.ndarray:
    """(3, R, R) normalised pixels -> (R, R, 3) colours in 0..255."""
    x = pixels * torch.tensor(CLIP_STD).view(3, 1, 1) + torch.tensor(CLIP_MEAN).view(3, 1, 1)
    return (x.permute(1, 2, 0).numpy() * 255).round()


def is_colour(block: np.ndarray, colour) -> bool:
    return bool(np.abs(block.reshape(-1, 3) - np.array(colour)).max() <= 40)  # JPEG and bicubic ringing


def test_a_square_scene_gives_exactly_the_pixels_of_the_hand_written_resize(towers):
    """The built-in benchmark's numbers stay as they were: for its square scenes the processor's bicubic
    resize (PIL's, as before) and normalisation give bit-identical pixels, in every mode."""
    scenes = [spatial.render(it.objects) for it in spatial.generate("test", 1, seed=5)[:3]]
    r = towers["resize"].resolution
    before = np.stack([np.asarray(im.resize((r, r), Image.BICUBIC)) for im in scenes])
    x = torch.from_numpy(before).permute(0, 3, 1, 2).float() / 255.0
    expected = (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    for aspect, tower in towers.items():
        assert torch.equal(tower.preprocess(scenes), expected), aspect


def test_a_wide_jpeg_is_squashed_cropped_or_padded(towers, tmp_path):
    """A 200x100 JPEG: red left half with a green bar on its left edge, white right half."""
    image = Image.new("RGB", (200, 100), WHITE)
    image.paste(RED, (0, 0, 100, 100))
    image.paste(GREEN, (0, 0, 20, 100))
    image.save(tmp_path / "wide.jpg", quality=95)
    with Image.open(tmp_path / "wide.jpg") as im:
        seen = {aspect: rgb(tower.preprocess([im])[0]) for aspect, tower in towers.items()}
    r = towers["resize"].resolution  # 112: the whole image scales by 112/200 = 0.56 to fit (pad, resize's width)

    squashed = seen["resize"]  # the whole image, 0.56 across and 1.12 down: shapes distorted
    assert is_colour(squashed[:, :8], GREEN) and is_colour(squashed[:, 16:52], RED)
    assert is_colour(squashed[:, 60:], WHITE)

    cropped = seen["crop"]  # 1.12 both ways to 224 x 112, then the middle 112 columns: x = 50..150 kept
    assert not any(is_colour(cropped[:, c : c + 4], GREEN) for c in range(0, r, 4))  # the bar is cut off
    assert is_colour(cropped[:, :52], RED) and is_colour(cropped[:, 60:], WHITE)

    padded = seen["pad"]  # 0.56 both ways, centred on a square of the mean colour: bands of 28 rows
    mean_colour = np.array([int(m * 255) for m in CLIP_MEAN])
    assert is_colour(padded[:26], mean_colour) and is_colour(padded[-26:], mean_colour)
    content = padded[30:82]
    assert is_colour(content[:, :8], GREEN) and is_colour(content[:, 16:52], RED) and is_colour(content[:, 60:], WHITE)
    # undistorted: the green bar is 20 x 100 in the image, ~11 x 56 here (0.56 both ways)
    green = np.argwhere(np.abs(padded - np.array(GREEN)).max(-1) <= 60)
    height, width = np.ptp(green[:, 0]) + 1, np.ptp(green[:, 1]) + 1
    assert 54 <= height <= 58 and 10 <= width <= 13, (height, width)
    assert abs(green[:, 0].min() - (r - 1 - green[:, 0].max())) <= 1  # centred


def test_the_feature_cache_tells_the_aspect_modes_apart(towers):
    keys = {cache_key(tower, "data") for tower in towers.values()}
    assert len(keys) == len(IMAGE_ASPECTS)
