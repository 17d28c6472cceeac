"""The token count M of each training step of an elastic projector, drawn from its token set.

A function of (seed, step) only, as the data order is (`StepSampler`): a resumed run draws what the
uninterrupted run drew at the same step, and every rank of a distributed run draws the same M without a word
exchanged. (A draw from the process's global generator would not resume exactly: Lightning's checkpoints do
not hold its state.) Every sample of a step gets the same M, so the batch stays rectangular.
"""
from __future__ import annotations

import torch

# apart from the data order's streams (seed * 100_003 + epoch, + 7_919): the two never share a generator seed
STREAM = 1_000_000_007


def drawn_tokens(token_set: tuple[int, ...], seed: int, step: int) -> int:
    """The M of optimiser step `step`: uniform over `token_set`, from a generator seeded by (seed, step)."""
    if len(token_set) == 1:
        return token_set[0]
    g = torch.Generator().manual_seed((seed * 1_000_003 + step + STREAM) % 2**63)
    return token_set[int(torch.randint(len(token_set), (1,), generator=g))]
