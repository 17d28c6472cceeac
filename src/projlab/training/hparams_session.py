"""An arm's row in TensorBoard's HPARAMS tab: its settings with its final results, written once it has ended,
so that `tensorboard --logdir runs/<sweep>` shows the sweep's table (one session per arm, sortable, with the
parallel-coordinates view).

The values are those of the arm's results.json (one place for each number); the metrics are scalars under
`final/` at the last step, beside the curves in `<run>/tb/`, which is where the tab looks them up.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

HPARAMS = ("projector", "num_visual_tokens", "resolution", "seed", "stage", "preset", "sweep", "control")
EFFICIENCY = ("step_time_s", "peak_tensor_mb", "peak_rss_mb")


def session(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float]]:
    """(hparams, metrics) of a finished arm's results record; unknown values are left out (a llava run has
    no accuracy), a setting that is unset is "none" (TensorBoard takes no nulls)."""
    config, metrics = record.get("config") or {}, record.get("metrics") or {}
    efficiency = record.get("efficiency") or {}
    params = {key: "none" if config.get(key) is None else config[key] for key in HPARAMS}
    final = {"final/accuracy": metrics.get("accuracy")}
    final.update({f"final/acc_{cat}": v.get("accuracy") for cat, v in (metrics.get("per_category") or {}).items()})
    final.update({f"final/{key}": efficiency.get(key) for key in EFFICIENCY})
    return params, {k: float(v) for k, v in final.items() if v is not None}


def write_session(log_dir: str | Path, record: dict[str, Any]) -> None:
    """Append the arm's session (settings and metrics, at its last step) to the event files in `log_dir`."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    params, metrics = session(record)
    step = int((record.get("efficiency") or {}).get("steps") or 0)
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for summary in hparams(params, metrics):  # the experiment, the session's start and its end
            writer.file_writer.add_summary(summary, step)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, step)
