"""What the sweep tests share: a tiny arm's overrides, the grid command, and waiting on a running sweep."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import TINY_RUN

ARM = [*TINY_RUN, "projector.depth=1"]  # c_abstractor and resampler both take a depth


def grid(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "projlab.sweeps.grid", *args], capture_output=True, text=True, timeout=timeout
    )


def write_spec(path: Path, **spec) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def wait_for(predicate, timeout: float = 240, what: str = "", proc: subprocess.Popen | None = None) -> None:
    t0 = time.monotonic()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the sweep ended (exit {proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def running_arm(sweep_dir: Path) -> dict | None:
    try:
        arms = json.loads((sweep_dir / "sweep.json").read_text())["arms"]
    except (FileNotFoundError, ValueError):
        return None
    return next((a for a in arms if a.get("pid")), None)


def pruning_spec(path: Path, study: str, n_trials: int) -> Path:
    """A search whose ThresholdPruner(lower=2) prunes any reported accuracy from step 5 on: a 3-step trial (one
    validation, at step 3) completes, a 9-step trial is pruned at its step-6 validation. Enqueued points make
    both happen whatever the sampler draws."""
    return write_spec(
        path, study=study, n_trials=n_trials,
        overrides=[*ARM, "projector=c_abstractor", "projector.num_visual_tokens=16"],
        space={"stage.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
               "stage.max_steps": {"type": "categorical", "choices": [3, 9]}},
        sampler={"type": "random", "seed": 0}, pruner={"type": "threshold", "lower": 2.0, "n_warmup_steps": 5},
        enqueue=[{"stage.lr": 1e-3, "stage.max_steps": 3}, {"stage.lr": 3e-3, "stage.max_steps": 9}],
    )
