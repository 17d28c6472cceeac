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
