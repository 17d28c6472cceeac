"""Pruning from inside a trial process: report the validation metric to the study, stop when pruned.

A search runs each trial as its own `projlab.train` process, given this callback as a config entry
(`+callbacks.pruning._target_=projlab.sweeps.pruning.OptunaPruning` and its `storage`, `study` and `trial`:
`projlab.sweeps.search.pruning_overrides`). This callback rebuilds the trial from
the shared storage, reports the monitored metric (the study's `monitor` attribute, default `val/acc`) at
every validation with the global step, and when the study's pruner (its `pruner` attribute, set by the
search command) says so, stops training and sets `pruned` so the run records status `pruned`. The search
worker then tells the study TrialState.PRUNED.
"""
from __future__ import annotations

import lightning as L
import optuna

from projlab.sweeps.specs import DEFAULT_MONITOR, build_pruner
from projlab.sweeps.storage import open_storage

class OptunaPruning(L.Callback):
    """Report the monitored metric of trial `trial` of `study` at each validation; stop when pruned."""

    def __init__(self, storage: str, study: str, trial: int) -> None:
        self.storage_url, self.study_name, self.number = storage, study, int(trial)
        self.monitor = DEFAULT_MONITOR
        self.pruned_at: int | None = None
        self._trial: optuna.trial.Trial | None = None

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    def _open(self) -> optuna.trial.Trial:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = open_storage(self.storage_url)
        study = optuna.load_study(study_name=self.study_name, storage=storage)
        study.pruner = build_pruner(study.user_attrs.get("pruner"))
        self.monitor = study.user_attrs.get("monitor", DEFAULT_MONITOR)
        study_id = storage.get_study_id_from_name(self.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.number)
        return optuna.trial.Trial(study, trial_id)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and trainer.is_global_zero and self._trial is None:
            self._trial = self._open()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero and self._trial is not None:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                self._trial.report(float(value), trainer.global_step)
                prune = self._trial.should_prune()
        prune = trainer.strategy.broadcast(prune, src=0)  # every rank stops together
        if prune:
            self.pruned_at = trainer.global_step
            trainer.should_stop = True
            if trainer.is_global_zero and self._trial is not None:
                self._trial.set_user_attr("pruned_at_step", trainer.global_step)
                print(f"optuna: trial {self.number} pruned at step {trainer.global_step}", flush=True)
