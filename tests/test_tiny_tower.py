"""The tiny tower's patch positions start as a 2-D code of (row, column), as its pre-training then refines."""
import torch

from projlab.models.presets import TINY_VISION, ensure_tiny_tower, sincos_positions

SIDE = TINY_VISION["image_size"] // TINY_VISION["patch_size"]


def _table(side: int = SIDE, width: int = TINY_VISION["hidden_size"]) -> torch.Tensor:
    table = torch.full((1 + side * side, width), 7.0)
    sincos_positions(table, side)
    return table


def test_half_the_channels_code_the_row_and_half_the_column():
    grid = _table()[1:].view(SIDE, SIDE, -1)
    half = grid.shape[-1] // 2
    assert torch.equal(grid[:, :1, :half].expand(-1, SIDE, -1), grid[..., :half])  # same row, same code
    assert torch.equal(grid[:1, :, half:].expand(SIDE, -1, -1), grid[..., half:])  # same column, same code
    assert torch.equal(_table()[0], torch.zeros(grid.shape[-1]))  # the CLS token has no place


def test_each_patch_lies_nearest_to_its_grid_neighbours():
    codes = _table()[1:]
    dist = torch.cdist(codes, codes)
    dist.fill_diagonal_(float("inf"))
    for i in range(SIDE * SIDE):
        r, c = divmod(i, SIDE)
        j = int(dist[i].argmin())
        assert abs(j // SIDE - r) + abs(j % SIDE - c) == 1, (i, j)


def test_a_built_tower_starts_from_that_code(tmp_path):
    from transformers import CLIPModel

    tower = CLIPModel.from_pretrained(ensure_tiny_tower(tmp_path, pretrain_steps=0))
    weight = tower.vision_model.embeddings.position_embedding.weight
    assert torch.allclose(weight, _table().to(weight.dtype))
