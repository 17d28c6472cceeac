"""Whether the data pipeline keeps up: samples/s that `QADataModule.train_dataloader` delivers alone, with
cached features (the recipe) and without (rendering + preprocessing in the loader), against the samples/s
a training step consumes. A ratio above 1 means the loader is not the bottleneck."""
from __future__ import annotations

import time
from pathlib import Path

from projlab import build
from projlab.bench.arms import train_items
from projlab.bench.presets import Backbones
from projlab.bench.timing import summary
from projlab.training.datamodule import QADataModule


def loader_times(dm: QADataModule, batches: int) -> list[float]:
    """Seconds per batch of the train loader, the first batch (iterator start-up) dropped."""
    dm.setup()
    it = iter(dm.train_dataloader())
    next(it)
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        next(it)
        times.append(time.perf_counter() - t0)
    return times


def loader_throughput(
    bb: Backbones, batch_size: int, batches: int, num_visual_tokens: int, cache_dir: str | Path, per_category: int,
) -> dict:
    """Loader samples/s with and without the feature cache. Run it before the tower moves to an accelerator:
    the first call fills the feature cache (the tower's forward on the CPU batches it reads)."""
    source = train_items(bb, per_category)
    out: dict = {"preset": bb.name, "batch_size": batch_size, "batches": batches,
                 "num_workers": bb.cfg.trainer.num_workers, "train_items": len(source.items)}
    for name, cache in (("cached", "auto"), ("uncached", "off")):
        cfg = bb.config(stage={"batch_size": batch_size, "max_steps": batches + 1}, eval={"batch_size": batch_size},
                        feature_cache=cache, paths={"cache_dir": str(cache_dir)})
        processor = build.text_processor(cfg, bb.llm, num_visual_tokens)
        dm = build.datamodule(cfg, bb.model(cfg), {"train": source}, processor=processor)
        t = summary(loader_times(dm, batches))
        out[name] = {"batch_time_s": t, "samples_per_s": batch_size / t["median"]}
    return out


def against_steps(loader: dict, steps: list[dict], reference: str) -> dict:
    """The loader's samples/s over the step's, for the recipe's arm (`reference`, a label) and for the
    fastest arm of the preset (the hardest to feed)."""
    fastest = max(steps, key=lambda r: r["samples_per_s"])
    ref = next((r for r in steps if r["label"] == reference), fastest)
    out = dict(loader)
    for key, arm in (("reference", ref), ("fastest", fastest)):
        out[key] = {
            "arm": arm["label"], "step_samples_per_s": arm["samples_per_s"],
            "ratio_cached": loader["cached"]["samples_per_s"] / arm["samples_per_s"],
            "ratio_uncached": loader["uncached"]["samples_per_s"] / arm["samples_per_s"],
        }
    return out
