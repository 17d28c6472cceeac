"""`<run>/progress.json`: how far a training run is, for whoever watches it from outside (a sweep's view).

    {"step": 840, "max_steps": 2100, "start_step": 0, "elapsed_s": 312.5, "updated": 1767225600.0}

`elapsed_s` counts from this process's first step, `start_step` is where it began (a resumed run starts
late), so (step - start_step) / elapsed_s is this process's own rate; `updated` is the wall-clock time of
the write (a file older than the process that trains now is an earlier launch's). Written by the training
run's `callbacks.ProgressFile`; replaced atomically, so a reader never sees half. Importing this module
imports no training library: a sweep's driver reads it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from projlab.io import atomic_write

PROGRESS_FILE = "progress.json"


def write_progress(run_dir: str | Path, step: int, max_steps: int, start_step: int, elapsed_s: float) -> None:
    data = {"step": step, "max_steps": max_steps, "start_step": start_step, "elapsed_s": round(elapsed_s, 3),
            "updated": time.time()}
    atomic_write(Path(run_dir) / PROGRESS_FILE, lambda tmp: tmp.write_text(json.dumps(data)))


def read_progress(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's progress.json, or None where it has none (not started, or not a training run)."""
    try:
        data = json.loads((Path(run_dir) / PROGRESS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) and "step" in data and "max_steps" in data else None
