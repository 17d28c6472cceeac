"""A sampler indexed by optimiser step, so a resumed run continues exactly where it stopped."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from projlab.training.token_draw import drawn_tokens


class StepSampler(Sampler):
    """Indices for steps `start_step` .. `total_steps - 1`; a fresh permutation of the data per epoch,
    seeded by (seed, epoch). Each rank reads its slice of the global batch (batch_size * world_size).

    `token_set`: an elastic projector's token counts; each index then comes as (index, M), M the step's draw
    (`token_draw.drawn_tokens`), so that the collate expands the step's image tokens to that M.

    `first`: the first `first_steps` steps draw from these indices only (a warm-up on part of the data, e.g.
    one category), in permutations of their own; the steps after draw from all the data as if they had
    started there."""

    def __init__(
        self, n: int, batch_size: int, seed: int, total_steps: int, start_step: int = 0, rank: int = 0,
        world_size: int = 1, first: Sequence[int] | None = None, first_steps: int = 0,
        token_set: tuple[int, ...] | None = None,
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.total_steps, self.start_step = total_steps, start_step
        self.rank, self.world_size = rank, world_size
        self.first = torch.as_tensor(list(first), dtype=torch.long) if first is not None and first_steps else None
        self.first_steps = first_steps if self.first is not None else 0
        self._perms: dict[tuple[str, int], torch.Tensor] = {}
        self.token_set = tuple(token_set) if token_set and len(token_set) > 1 else None

    def _perm(self, pool: str, size: int, epoch: int) -> torch.Tensor:
        key = (pool, epoch)
        if key not in self._perms:
            self._perms = {k: v for k, v in self._perms.items() if k[0] != pool}  # one epoch per pool at a time
            offset = 7_919 if pool == "first" else 0
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch + offset)
            self._perms[key] = torch.randperm(size, generator=g)
        return self._perms[key]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        drawn: tuple[int, int] | None = None  # (step, M): one draw per step
        for step, index in self._indices():
            if self.token_set is None:
                yield index
                continue
            if drawn is None or drawn[0] != step:
                drawn = (step, drawn_tokens(self.token_set, self.seed, step))
            yield index, drawn[1]

    def _indices(self) -> Iterator[tuple[int, int]]:
        """(step, data index) for every sample of the steps this sampler covers."""
        global_batch = self.batch_size * self.world_size
        for step in range(self.start_step, self.total_steps):
            warm = step < self.first_steps
            base = (step if warm else step - self.first_steps) * global_batch + self.rank * self.batch_size
            for pos in range(base, base + self.batch_size):
                if warm:
                    epoch, k = divmod(pos, len(self.first))
                    yield step, int(self.first[self._perm("first", len(self.first), epoch)[k]])
                else:
                    epoch, k = divmod(pos, self.n)
                    yield step, int(self._perm("all", self.n, epoch)[k])

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch_size
