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
