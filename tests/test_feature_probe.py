"""The linear probe that checks what the tower's features carry."""
from __future__ import annotations

import torch

from projlab.analysis.feature_probe import probe


def test_probe_reads_a_label_the_features_carry_and_not_one_they_do_not():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 16, (2000,), generator=g)
    noise = torch.randn(2000, 32, generator=g)
    carried = noise.clone()
    carried[:, :16] += 6 * torch.nn.functional.one_hot(labels, 16)
    assert probe(carried, labels, 16) > 0.95
    assert probe(noise, labels, 16) < 0.15  # chance is 1/16


def test_pooling_reads_the_token_that_holds_the_object_and_averages_its_patches(capsys):
    from projlab.analysis.feature_probe import probe_grid
    from projlab.data import spatial

    items = spatial.generate("train", 400, seed=0, categories=("stripes",))
    rows = cols = 16
    g = torch.Generator().manual_seed(0)
    feats = 0.1 * torch.randn(len(items), rows * cols, 8, generator=g)
    for i, item in enumerate(items):
        for obj in item.objects:
            if obj.stripes:  # the orientation at the centre patch, its negative beside it in the same 2 x 2 block
                r, c = (int((x + 0.5) * rows / obj.layout) for x in obj.cell)
                code = torch.nn.functional.one_hot(torch.tensor(spatial.OPTIONS["stripes"].index(obj.stripes)), 8)
                feats[i, r * cols + c] += 3 * code
                feats[i, r * cols + (c ^ 1)] -= 3 * code
    accuracy = {}
    for k in (1, 2):
        probe_grid(feats, items, rows, cols, k)
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("stripes"))
        accuracy[k] = float(line.split()[2])
    assert accuracy[1] > 0.95 and accuracy[2] < 0.45  # pooled, the two patches cancel: chance is 0.25
