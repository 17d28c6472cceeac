"""The one place that defines results.json, the record every run leaves in its folder.

Sweeps, evaluation and analysis read only this file (and the TensorBoard events beside it). Its parts are
built here too: `run_config` (config), `run_metrics` and `test_scores` (metrics), `failed` (a crash).

    {
      "schema": 1,
      "status": "completed" | "failed" | "running" | "pruned",
      "error": null | "<one line>",
      "run_dir": "<folder>",
      "config": {
        "projector": "c_abstractor", "num_visual_tokens": 144,   # M as built (derived by the projector)
        "resolution": 112, "grid": [16, 16], "image_aspect": "resize", "seed": 0, "preset": "tiny", "stage": "joint",
        "feature_layer": -1, "feature_norm": "standardize", "max_steps": 2100, "batch_size": 32,
        "world_size": 1, "eval_batch_size": 64, "precision": "32-true", "sweep": "single",
        "control": null | "scrambled", "token_set": [144],   # every M it serves (elastic: several)
        "projector_settings": {...every knob as built}, "full": {...resolved Hydra config...}
      },
      "efficiency": {
        "params_total": int, "params_trainable": int, "projector_params": int,
        "projector_flops": int, "llm_flops": int,           # forward FLOPs per sample
        "llm_seq_len": int, "step_time_s": float (median), "samples_per_s": float,
        "visual_tokens_per_s": float, "peak_tensor_mb": float (the model's: weights, gradients, optimiser
        state, activations), "peak_rss_mb": float (the process's), "cpu_threads": int, "steps": int,
        "resumed_from_step": int, "samples": int, "wall_time_s": float, "data_setup_s": float,
        "feature_cache": bool,
        "by_tokens": {"<M>": {"projector_flops", "llm_seq_len", "llm_flops"}}   # elastic runs only
      },
      "metrics": {
        "accuracy": float, "n": int,
        "per_category": {"<category>": {"accuracy": float, "n": int}, ...},
        "loss": float, "predicted_histogram": {"A": float (the fraction of answers that chose A), ...},
        "train_loss_final": float (the mean training loss of the last 50 steps), "val": {...the last validation},
        "locality": null | {"norm_ratio", "vision_norm", "text_norm", "knn_overlap", "knn_chance", "knn_k",
                            "images"},               # projlab.evaluation.locality, at the arm's M
        "by_tokens": {"<M>": {"accuracy", "n", "loss", "per_category", "locality"}},   # elastic runs only: the
                                                     # test at every M of config.token_set
        "benchmarks": {"<bench name>": {...scores written by `make eval`, "answered_by": "likelihood" | "generate",
                                        "by_tokens": {"<M>": {...}} for an elastic run}}
      }
    }
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from projlab.errors import UserError
from projlab.io import read_json, write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
STATUSES = ("completed", "failed", "running", "pruned")
_warned: set[Path] = set()


class Damaged(dict):
    """What `read_results` gives for a results.json that cannot be parsed (a disk that filled, a copy cut
    short): a failed record whose error names the file, so every reader counts it as failed and says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(status="failed", error=f"damaged {path}: {reason}", run_dir=str(path.parent))
        self.path = path


def results_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RESULTS_FILE


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's results; None where the run has none yet; a `Damaged` failed record (and, once per file and
    process, a warning line on stderr naming it) where the file cannot be parsed."""
    path = results_path(run_dir)
    try:
        record, reason = read_json(path), "not a JSON object"
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        record, reason = None, (str(err).splitlines() or [type(err).__name__])[0]
    if isinstance(record, dict):
        return record
    damaged = Damaged(path, reason)
    if path not in _warned:
        _warned.add(path)
        print(f"warning: {damaged['error']}; counted as failed", file=sys.stderr, flush=True)
    return damaged


def _keep_damaged(run_dir: str | Path) -> None:
    """Rename a damaged results.json aside before it is replaced: nothing written is lost."""
    path = results_path(run_dir)
    if path.is_file() and isinstance(read_results(run_dir), Damaged):
        kept = path.with_name(f"results.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json")
        os.replace(path, kept)
        print(f"kept the damaged {path} as {kept.name}", file=sys.stderr, flush=True)


def write_results(run_dir: str | Path, record: dict[str, Any]) -> Path:
    """Write atomically (a damaged file there is kept aside first); `status` must be one of STATUSES."""
    if record.get("status") not in STATUSES:
        raise ValueError(f"status {record.get('status')!r} not in {STATUSES}")
    _keep_damaged(run_dir)
    record = {"schema": SCHEMA_VERSION, **record}
    return write_json(results_path(run_dir), record)


def update_results(run_dir: str | Path, path: tuple[str, ...], value: Any) -> Path:
    """Set one nested key (e.g. ("metrics", "benchmarks", "mmbench")) and keep everything else."""
    record = read_results(run_dir)
    if record is None:
        raise FileNotFoundError(f"no {RESULTS_FILE} in {run_dir}")
    if isinstance(record, Damaged):
        raise UserError(f"{record['error']}; cannot add to it (move it away and train the run again)")
    node = record
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return write_json(results_path(run_dir), record)


# ---- the record of a training run, as train.py writes it ------------------------------------------------
TRAIN_LOSS_WINDOW = 50  # train_loss_final: the mean of this many last steps
SCRAMBLED = "scrambled"  # the data-side control: the layout cells of every image permuted (data.scramble)


def data_control(cfg: DictConfig) -> str | None:
    """The data-side control a run is (`scrambled`), or None: tables show it in place of the projector, and
    the run name ends with it (`config.run_name`)."""
    return SCRAMBLED if cfg.data.get("scramble") else None


def run_config(cfg: DictConfig, model: Any, world_size: int, precision: str) -> dict:
    """The record's `config`: what the built `model` (an MLLM) is, and the run's resolved config."""
    return {
        "projector": model.projector.registry_name,
        "num_visual_tokens": model.num_visual_tokens,
        "resolution": model.vision.resolution,
        "grid": list(model.vision.grid),
        "image_aspect": model.vision.image_aspect,
        "seed": cfg.seed,
        "preset": cfg.preset,
        "stage": cfg.stage.name,
        "feature_layer": cfg.vision.feature_layer,
        "feature_norm": cfg.feature_norm,
        "max_steps": cfg.stage.max_steps,
        "precision": precision,
        "batch_size": cfg.stage.batch_size,
        "world_size": world_size,
        "eval_batch_size": cfg.eval.batch_size,
        "sweep": cfg.sweep,
        "control": data_control(cfg),
        "token_set": list(model.projector.token_set),  # every M it serves: [M], or an elastic projector's set
        # every knob of the projector as built, the dataclass defaults the yaml leaves out included (init...)
        "projector_settings": dataclasses.asdict(model.projector.config),
        "full": OmegaConf.to_container(cfg, resolve=True),
    }


def failed(run_dir: str | Path, cfg: DictConfig, err: BaseException) -> dict:
    """The record of a run that raised `err`: what was written before (or the folder and config), failed,
    with the error's first line."""
    record = read_results(run_dir) or {"run_dir": str(run_dir), "config": {"full": OmegaConf.to_container(cfg)}}
    msg = str(err).splitlines()[0] if str(err) else ""
    return {**record, "status": "failed", "error": f"{type(err).__name__}: {msg}"}


def test_scores(test: dict[str, float], categories: list[str]) -> dict:
    """A test's accuracy, n, loss and per-category scores, as results.json holds them."""
    found = [c for c in categories if f"acc_{c}" in test]
    return {
        "accuracy": test.get("acc"),
        "n": int(sum(test[f"n_{c}"] for c in found)),
        "loss": test["loss"],
        "per_category": {c: {"accuracy": test[f"acc_{c}"], "n": int(test[f"n_{c}"])} for c in found},
    }


def run_metrics(test: dict[str, float], categories: list[str], train_losses: list[float],
                val: dict | None) -> dict:
    """The record's `metrics` from the module's last test (or validation), its training losses and its last
    validation."""
    tail = train_losses[-TRAIN_LOSS_WINDOW:]
    return {
        **test_scores(test, categories),
        "predicted_histogram": {k[-1]: v for k, v in test.items() if k.startswith("pred_frac_")},
        "train_loss_final": sum(tail) / len(tail) if tail else None,
        "val": val,
    }
