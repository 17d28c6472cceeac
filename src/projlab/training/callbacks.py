"""Callbacks of a training run: efficiency measured while training (step time, samples/s, visual tokens/s,
the step's peak tensor memory), the terminal's progress bar, and the progress file a sweep reads."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

from projlab.training.memory import peak_memory
from projlab.training.progress import write_progress


class EfficiencyMonitor(L.Callback):
    """Times each optimiser step (forward, backward, update) and logs throughput; measures the peak tensor
    memory of one early step (`training.memory`: the allocator's on a GPU, followed storages on the CPU,
    slow, so that step is one of the untimed warm-up steps)."""

    def __init__(self, num_visual_tokens: int, skip_first: int = 5, memory_step: int = 2) -> None:
        self.num_visual_tokens = num_visual_tokens
        self.skip_first = skip_first  # the first steps pay for warm-up, not for the model
        self.memory_step = memory_step  # counted from this process's first step (a resumed run starts late)
        self.step_times: list[float] = []
        self.step_tokens: list[int] = []  # each step's M (an elastic projector's varies with the draw)
        self.peak_tensor_mb: float | None = None
        self._t0 = 0.0
        self._memory = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # one process only: with several, a CPU rank's storages are DTensor shards (and its peak a shard's)
        if len(self.step_times) == self.memory_step and trainer.world_size == 1:
            self._memory = peak_memory(pl_module.device, pl_module, *trainer.optimizers)
            self._memory_out = self._memory.__enter__()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        dt = time.perf_counter() - self._t0
        self.step_times.append(dt)
        if self._memory is not None:
            self._memory.__exit__(None, None, None)
            self._memory = None
            self.peak_tensor_mb = self._memory_out["mb"]
        b = batch["input_ids"].shape[0] * trainer.world_size
        m = batch.get("num_visual_tokens", self.num_visual_tokens)
        self.step_tokens.append(m)
        pl_module.log_dict(
            {
                "perf/step_time_s": dt,
                "perf/samples_per_s": b / dt,
                "perf/visual_tokens_per_s": b * m / dt,
            },
            on_step=True, on_epoch=False,
        )

    def summary(self, batch_size: int, world_size: int) -> dict[str, float]:
        times = self.step_times[self.skip_first :] or self.step_times
        if not times:
            return {}
        med = statistics.median(times)
        tokens = self.step_tokens[self.skip_first :] or self.step_tokens
        m = statistics.mean(tokens) if tokens else self.num_visual_tokens  # an elastic arm: its draws' mean
        return {
            "step_time_s": med,
            "samples_per_s": batch_size * world_size / med,
            "visual_tokens_per_s": batch_size * world_size * m / med,
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


class ProgressFile(L.Callback):
    """`<run>/progress.json` (`projlab.training.progress`), by rank 0: at the start, at most once per
    `every_s` while training, and at the end."""

    def __init__(self, run_dir: str | Path, every_s: float = 1.0) -> None:
        self.run_dir = Path(run_dir)
        self.every_s = every_s
        self._t0 = self._last = 0.0
        self._start_step = 0

    def _write(self, trainer: L.Trainer) -> None:
        if trainer.is_global_zero:
            self._last = time.monotonic()
            write_progress(self.run_dir, trainer.global_step, trainer.max_steps, self._start_step,
                           self._last - self._t0)

    def on_train_start(self, trainer, pl_module) -> None:
        self._t0, self._start_step = time.monotonic(), trainer.global_step
        self._write(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if time.monotonic() - self._last >= self.every_s:
            self._write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer)


class FailAt(L.Callback):
    """Raise at a given step: how tests and users check that a sweep survives a failing arm."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError(f"injected failure at step {trainer.global_step}")
