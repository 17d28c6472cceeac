"""The one place that defines results.json, the record every run leaves in its folder.

Sweeps, evaluation and analysis read only this file (and the TensorBoard events beside it).

    {
      "schema": 1,
      "status": "completed" | "failed" | "running" | "pruned",
      "error": null | "<one line>",
      "run_dir": "<folder>",
      "config": {
        "projector": "c_abstractor", "num_visual_tokens": 144,   # M as built (derived by the projector)
        "resolution": 112, "grid": [16, 16], "seed": 0, "preset": "tiny", "stage": "joint",
        "feature_layer": -1, "feature_norm": "standardize", "max_steps": 2100, "batch_size": 32,
        "world_size": 1, "eval_batch_size": 64, "full": {...resolved Hydra config...}
      },
      "efficiency": {
        "params_total": int, "params_trainable": int, "projector_params": int,
        "projector_flops": int, "llm_flops": int,           # forward FLOPs per sample
        "llm_seq_len": int, "step_time_s": float (median), "samples_per_s": float,
        "visual_tokens_per_s": float, "peak_memory_mb": float, "cpu_threads": int, "steps": int,
        "wall_time_s": float
      },
      "metrics": {
        "accuracy": float, "n": int,
        "per_category": {"<category>": {"accuracy": float, "n": int}, ...},
        "predicted_histogram": {"A": int, ...},
        "train_loss_final": float,
        "benchmarks": {"<bench name>": {...scores written by `make eval`...}}
      }
    }
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from projlab.io import read_json, write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
STATUSES = ("completed", "failed", "running", "pruned")


def results_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RESULTS_FILE


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's results, or None where the run has none yet (or its file is unreadable)."""
    path = results_path(run_dir)
    try:
        return read_json(path)
    except (FileNotFoundError, ValueError):
        return None


def write_results(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write atomically; `status` must be one of STATUSES."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"status {record.get('status')!r} not in {STATUSES}")
    record = {"schema": SCHEMA_VERSION, **record}
    return write_json(results_path(run_dir), record)


def update_results(run_dir: str | Path, path: tuple[str, ...], value: Any) -> Path:
    """Set one nested key (e.g. ("metrics", "benchmarks", "mmbench")) and keep everything else."""
    record = read_results(run_dir)
    if record is None:
        raise FileNotFoundError(f"no {RESULTS_FILE} in {run_dir}")
    node = record
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return write_json(results_path(run_dir), record)
