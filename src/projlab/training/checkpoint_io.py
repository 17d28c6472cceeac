"""Checkpoint files written straight to disk: `torch.save` into a temporary file beside the target, renamed
over it (`projlab.io.atomic_write`).

Lightning's own writer serialises the whole checkpoint into memory first and then copies it to the file:
a stage-2 checkpoint (the LLM's weights and optimiser state: 4 GB with 2 of Vicuna-7B's layers, ~40 GB
with all 32) cost its size again in memory and a second pass over it in time.
"""
from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from projlab.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
