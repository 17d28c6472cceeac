"""A run folder holds one configuration: the one stored in its config.yaml when it first trained.

A run is known by its folder name (projector, M, resolution, seed, stage), which leaves most settings out.
So before a completed run is skipped or a checkpoint resumed, the stored resolved config is compared with
the requested one, run-management keys aside (`MANAGEMENT`); a difference is one UserError line naming the
differing keys and the ways out. `rerun=true` trains again: the previous run is set aside in
`<run>/replaced/<time>/`, never deleted.

(A hash of the non-default settings in the folder name would keep distinct settings apart without asking;
it would also make the folder of a run unknowable from its arm, and give every setting a new folder.)
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from projlab.errors import UserError
from projlab.results import read_results
from projlab.run_lock import LOCK_FILE

CONFIG_FILE = "config.yaml"
REPLACED = "replaced"
# Keys that say how a run is managed, not what it trains: the folder itself, where files go, how often it
# logs or checkpoints, the progress bar, loader workers, a test's injected failure, the callbacks (a search
# trial's pruning among them), and the feature cache (cached and live features give the same losses, a test
# checks it).
MANAGEMENT = (
    "sweep", "run_name", "rerun", "fail_at_step", "callbacks", "paths", "feature_cache",
    "trainer.progress_bar", "trainer.log_every_n_steps", "trainer.checkpoint_every_steps", "trainer.num_workers",
)
# Keys that older run folders' config.yaml hold and no run sets now, left out of the comparison so those runs
# still resume: `optuna` (a search trial's study, before its pruning came as `callbacks.pruning`).
RETIRED = ("optuna",)
KEPT = ("train.log", LOCK_FILE, REPLACED)  # stay in the folder when a run is set aside
SHOWN = 6  # differing keys named in one error line
UNSET = "(not set)"


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict) and node:
        return {k: v for key, value in node.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _show(flat: dict[str, Any], key: str) -> str:
    return repr(flat[key]) if key in flat else UNSET


def differences(stored: dict, asked: dict, *, keep: tuple[str, ...] | None = None) -> str:
    """The keys whose values differ, as `key stored -> asked` joined by commas ('' if none): every key but
    the run-management ones, or only those under `keep`."""
    a, b = _flat(stored), _flat(asked)
    compared = (lambda k: _under(k, keep)) if keep is not None else (lambda k: not _under(k, (*MANAGEMENT, *RETIRED)))
    keys = [k for k in dict.fromkeys([*a, *b]) if compared(k) and a.get(k, UNSET) != b.get(k, UNSET)]
    shown = [f"{k} {_show(a, k)} -> {_show(b, k)}" for k in keys[:SHOWN]]
    more = f", and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(shown) + more


def stored_config(run_dir: Path) -> dict | None:
    """The resolved config a run folder trained with: its config.yaml, else the one its results.json holds
    (a run that failed before writing config.yaml), else None."""
    path = run_dir / CONFIG_FILE
    if path.is_file():
        try:
            return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except Exception as err:  # a damaged file: name it, as for results.json
            raise UserError(f"{path} is damaged ({type(err).__name__}); move it away or give rerun=true") from err
    full = ((read_results(run_dir) or {}).get("config") or {}).get("full")
    return full if isinstance(full, dict) else None


def config_problem(run_dir: Path, cfg: DictConfig | dict, ways_out: str) -> str | None:
    """None where `run_dir` is new or holds a run of these settings (or `rerun` is asked); otherwise the line
    that names the differing keys and `ways_out`."""
    asked = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    if asked.get("rerun") or not run_dir.is_dir():
        return None
    stored = stored_config(run_dir)
    diff = differences(stored, asked) if stored is not None else ""
    if not diff:
        return None
    return f"{run_dir} holds a run of other settings (stored -> asked: {diff}); {ways_out}"


def check_config(run_dir: Path, cfg: DictConfig, ways_out: str = "rerun=true replaces it, another sweep= or "
                 "run_name= keeps both") -> None:
    problem = config_problem(run_dir, cfg, ways_out)
    if problem:
        raise UserError(problem)


def set_aside(run_dir: Path) -> Path | None:
    """Move what a previous run left (results, config, checkpoints, logs) into `<run>/replaced/<time>/`;
    return that folder, or None where there was nothing. train.log stays: it is the folder's history."""
    entries = [p for p in run_dir.iterdir() if p.name not in KEPT] if run_dir.is_dir() else []
    if not entries:
        return None
    dest = run_dir / REPLACED / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():
        dest = dest.with_name(dest.name + "+")
    dest.mkdir(parents=True)
    for p in entries:
        p.rename(dest / p.name)
    return dest
