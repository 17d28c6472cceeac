"""A sampler indexed by optimiser step, so a resumed run continues exactly where it stopped."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class StepSampler(Sampler[int]):
    """Indices for steps `start_step` .. `total_steps - 1`; a fresh permutation of the data per epoch,
    seeded by (seed, epoch). Each rank reads its slice of the global batch (batch_size * world_size)."""

    def __init__(
        self, n: int, batch_size: int, seed: int, total_steps: int, start_step: int = 0, rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.total_steps, self.start_step = total_steps, start_step
        self.rank, self.world_size = rank, world_size
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def _perm_for(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def __iter__(self) -> Iterator[int]:
        global_batch = self.batch_size * self.world_size
        for step in range(self.start_step, self.total_steps):
            base = step * global_batch + self.rank * self.batch_size
            for pos in range(base, base + self.batch_size):
                epoch, k = divmod(pos, self.n)
                yield int(self._perm_for(epoch)[k])

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch_size
