"""How the bench times: a device-synchronised clock, round-robin repeats, robust summaries.

Arms are timed interleaved (one call of every arm per round, the starting arm rotating each round) so that
drift of a shared machine lands on every arm alike; ratios are taken per round, then summarised.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


class Clock:
    """`perf_counter`, after waiting for the device's queued work (a GPU runs asynchronously)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self) -> float:
        self.sync()
        return time.perf_counter()


def summary(values: list[float]) -> dict[str, float]:
    """Median, quartiles, min and max (the spread of a few repeats on a shared machine)."""
    if not values:
        return {}
    v = sorted(values)
    q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else (v[0], v[0], v[0])
    return {"median": statistics.median(v), "q1": q1, "q3": q3, "min": v[0], "max": v[-1], "n": len(v)}


def interleaved(
    calls: dict[str, Callable[[], object]], repeats: int, clock: Clock
) -> dict[str, list[float]]:
    """Seconds per call of each entry of `calls`, `repeats` rounds, round-robin with a rotating start."""
    names = list(calls)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = clock()
            calls[name]()
            times[name].append(clock() - t0)
    return times


def ratios(times: dict[str, list[float]], reference: str) -> dict[str, list[float]]:
    """Per-round ratio of every entry's time to the reference's time in the same round."""
    ref = times[reference]
    return {n: [t / r for t, r in zip(ts, ref)] for n, ts in times.items()}
