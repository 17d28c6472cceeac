"""Callbacks of a training run: efficiency measured while training (step time, samples/s, visual tokens/s,
peak memory) and the terminal's progress bar."""
from __future__ import annotations

import resource
import statistics
import sys
import time

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar


def peak_memory_mb(device: torch.device | None = None) -> float:
    """Peak accelerator memory where there is one, else the process's peak resident memory."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


class EfficiencyMonitor(L.Callback):
    """Times each optimiser step (forward, backward, update) and logs throughput."""

    def __init__(self, num_visual_tokens: int, skip_first: int = 5) -> None:
        self.num_visual_tokens = num_visual_tokens
        self.skip_first = skip_first  # the first steps pay for warm-up, not for the model
        self.step_times: list[float] = []
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        dt = time.perf_counter() - self._t0
        self.step_times.append(dt)
        b = batch["input_ids"].shape[0] * trainer.world_size
        pl_module.log_dict(
            {
                "perf/step_time_s": dt,
                "perf/samples_per_s": b / dt,
                "perf/visual_tokens_per_s": b * self.num_visual_tokens / dt,
                "perf/peak_memory_mb": peak_memory_mb(pl_module.device),
            },
            on_step=True, on_epoch=False,
        )

    def summary(self, batch_size: int, world_size: int) -> dict[str, float]:
        times = self.step_times[self.skip_first :] or self.step_times
        if not times:
            return {}
        med = statistics.median(times)
        return {
            "step_time_s": med,
            "samples_per_s": batch_size * world_size / med,
            "visual_tokens_per_s": batch_size * world_size * self.num_visual_tokens / med,
        }


class StepProgressBar(RichProgressBar):
    """Runs are a fixed number of optimiser steps in one pass of a step sampler (max_epochs=-1), where
    Lightning's bar reads "Epoch 0/-2" and, after a resume, counts the remaining batches ("200/199"):
    count optimiser steps out of max_steps instead, so a resumed run shows where it picked up."""

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'Training steps':{len(self.validation_description)}}"

    @property
    def total_train_batches(self) -> int:
        return self.trainer.max_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, trainer.global_step - 1)


def progress_bar() -> L.Callback:
    """The step-labelled Rich bar, or Lightning's plain tqdm bar where rich is not installed."""
    try:
        return StepProgressBar()
    except ModuleNotFoundError:
        return TQDMProgressBar()
