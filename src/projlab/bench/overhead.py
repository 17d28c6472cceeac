"""What the framework itself costs: `Trainer.fit` on `MLLMModule` against a plain PyTorch loop over the same
model, DataModule, batch size, optimiser and gradient clipping.

Both loops read batches from the same `QADataModule` (cached features, as the tiny recipe), run the same
number of steps and drop the same warm-up steps; they alternate in blocks (plain, Lightning, Lightning,
plain, ...) so that a drift of a shared machine lands on both alike. Two spans are timed per step:

- step: from Lightning's `on_train_batch_start` to its `on_train_batch_end` (hooks, `training_step` with its
  `self.log` calls, backward, clipping, optimiser, LR schedule); in the plain loop the same work;
- iteration: from one step's start to the next one's (adds fetching and collating the next batch, moving
  it to the device, Lightning's logging and loop bookkeeping).

Lightning runs without progress bar, logger, checkpointing and model summary (a real run writes a
checkpoint every 100 steps, not per step), but with what a real run does every step: the module's own
logging and the `EfficiencyMonitor` callback.
"""
from __future__ import annotations

import itertools
import statistics
from pathlib import Path

import lightning as L
import torch

from projlab import build
from projlab.bench.arms import ArmSpec, arm_config, train_items
from projlab.bench.loop import plain_step, set_train_mode, to_device, trainable
from projlab.bench.presets import Backbones
from projlab.bench.timing import Clock, summary
from projlab.training.callbacks import EfficiencyMonitor
from projlab.training.datamodule import QADataModule
from projlab.training.module import MLLMModule

TARGET = 1.03  # Lightning within 3% of the plain loop (measured 1.003 at M = 144, docs/speed.md)


class StepTimer(L.Callback):
    """Start and end time of every training step (placed last: the end includes the other callbacks)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append(self.clock())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(self.clock())


def _spans(starts: list[float], ends: list[float], warmup: int) -> tuple[list[float], list[float]]:
    """Step and iteration times, warm-up steps dropped."""
    steps = [e - s for s, e in zip(starts, ends)][warmup:]
    iters = [b - a for a, b in zip(starts, starts[1:])][warmup:]
    return steps, iters


def run_plain(module: MLLMModule, dm: QADataModule, steps: int, warmup: int, device: torch.device,
              precision: str, clock: Clock) -> tuple[list[float], list[float]]:
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    params = trainable(module)
    set_train_mode(module)
    dm.trainer = None  # a previous Lightning block left its finished trainer: the sampler would start at its end
    starts, ends = [], []
    for batch in itertools.islice(dm.train_dataloader(), steps):
        batch = to_device(batch, device)
        starts.append(clock())
        plain_step(module, optimizer, scheduler, params, batch, device, precision)
        ends.append(clock())
    return _spans(starts, ends, warmup)


def run_lightning(module: MLLMModule, dm: QADataModule, steps: int, warmup: int, device: torch.device,
                  precision: str, clock: Clock) -> tuple[list[float], list[float]]:
    timer = StepTimer(clock)
    trainer = L.Trainer(
        max_steps=steps, max_epochs=-1, accelerator=device.type, devices=1, precision=precision,
        logger=False, enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
        callbacks=[EfficiencyMonitor(module.model.num_visual_tokens), timer],
        gradient_clip_val=module.stage.grad_clip or None, limit_val_batches=0, num_sanity_val_steps=0,
        use_distributed_sampler=False, log_every_n_steps=10,
    )
    trainer.fit(module, datamodule=dm)
    return _spans(timer.starts, timer.ends, warmup)


def bench_overhead(
    bb: Backbones, spec: ArmSpec, batch_size: int, steps: int, warmup: int, blocks: int, device: torch.device,
    precision: str, cache_dir: str | Path, per_category: int,
) -> dict:
    """Lightning's step and iteration times against the plain loop's, and their ratios (medians)."""
    torch.manual_seed(0)
    total = warmup + steps
    # cached features (a frozen tower), as the tiny recipe trains
    cfg = arm_config(bb, spec, batch_size, stage={"max_steps": total}, feature_cache="auto",
                     paths={"cache_dir": str(cache_dir)})
    model = bb.model(cfg).to(device)
    module = build.module(cfg, model)
    source = train_items(bb, per_category)
    dm = build.datamodule(cfg, model, {"train": source, "val": source})
    build.prepare_data(cfg, model, dm)
    clock = Clock(device)
    times: dict[str, dict[str, list[float]]] = {k: {"step": [], "iteration": []} for k in ("plain", "lightning")}
    loops = [("plain", run_plain), ("lightning", run_lightning)]
    for b in range(blocks):  # plain, Lightning, Lightning, plain, ...: a linear drift cancels
        for name, run in loops if b % 2 == 0 else loops[::-1]:
            step, iteration = run(module, dm, total, warmup, device, precision, clock)
            times[name]["step"] += step
            times[name]["iteration"] += iteration

    def ratio(span: str) -> float:
        return statistics.median(times["lightning"][span]) / statistics.median(times["plain"][span])

    ratios = {span: ratio(span) for span in ("step", "iteration")}
    return {
        "preset": bb.name,
        "arm": spec.label,
        "batch_size": batch_size,
        "timed_steps_per_block": steps,
        "warmup_per_block": warmup,
        "blocks": blocks,
        "plain": {span: summary(v) for span, v in times["plain"].items()},
        "lightning": {span: summary(v) for span, v in times["lightning"].items()},
        "ratio": ratios,
        "target_ratio": TARGET,
        "within_target": all(r <= TARGET for r in ratios.values()),
    }
