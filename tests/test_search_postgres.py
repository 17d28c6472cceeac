"""Optuna searches on a PostgreSQL server (the storage for workers on many nodes): two workers on one study,
pruning, and a killed worker whose trial is failed by its heartbeat and run again. A throwaway server is
started for the module (tests/postgres_server.py); without one the tests skip, saying why."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import optuna
import pytest

from postgres_server import Server
from sweep_helpers import ARM, pruning_spec, results, wait_for, write_spec

pytestmark = pytest.mark.slow
COMPLETE, PRUNED, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL


@pytest.fixture(scope="module")
def postgres():
    server = Server()
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        server.stop()
        pytest.skip(f"no PostgreSQL server: {err}")
    yield server.url
    server.stop()


def search(spec, url: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "projlab.sweeps.search", str(spec), "--storage", url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def load(study: str, url: str) -> list[optuna.trial.FrozenTrial]:
    from projlab.sweeps.storage import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(url)).get_trials()


def test_two_workers_share_a_postgres_study_with_pruning(runs_dir, tmp_path, postgres):
    # as the SQLite test: ThresholdPruner(lower=2) prunes the 9-step trial at its step-6 validation
    spec = pruning_spec(tmp_path / "s.yaml", "pg", 3)
    proc = search(spec, postgres, "--workers", "2")
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    trials = load("pg", postgres)
    assert sorted(t.number for t in trials) == [0, 1, 2]  # no number twice, none beyond n_trials
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers asked
    assert trials[0].state == COMPLETE and trials[1].state == PRUNED
    assert results(runs_dir / "pg" / "trial-1")["status"] == "pruned" and trials[1].intermediate_values.keys() == {3, 6}
    assert results(runs_dir / "pg" / "trial-0")["metrics"]["accuracy"] == trials[0].value


def test_a_killed_workers_trial_is_failed_by_its_heartbeat_and_retried(runs_dir, tmp_path, postgres):
    spec = write_spec(
        tmp_path / "k.yaml", study="kill", n_trials=2, overrides=[*ARM, "projector=c_abstractor",
                                                                  "projector.num_visual_tokens=16"],
        space={"stage.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        sampler={"type": "random", "seed": 0}, pruner={"type": "none"},
        heartbeat={"interval_s": 1, "grace_s": 3, "max_retry": 2},
    )
    proc = search(spec, postgres, "--workers", "2")
    try:
        # the worker of trial 0 is killed while its trial runs (its trial process then records a failure)
        def trial_0_running() -> bool:
            try:
                return any(t.number == 0 and t.state.name == "RUNNING" and t.user_attrs.get("worker")
                           for t in load("kill", postgres))
            except KeyError:  # the study is not created yet
                return False

        wait_for(trial_0_running, timeout=120, what="trial 0 to run", proc=proc)
        victim = int(next(t for t in load("kill", postgres) if t.number == 0).user_attrs["worker"].rpartition(":")[2])
        os.kill(victim, signal.SIGKILL)
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    trials = {t.number: t for t in load("kill", postgres)}
    assert trials[0].state == FAIL, out[-3000:]
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == 0]
    assert len(retry) == 1 and retry[0].state == COMPLETE, out[-3000:]
    assert retry[0].params == trials[0].params and retry[0].user_attrs["run_dir"].endswith("trial-0")
    assert sorted(trials) == list(range(len(trials)))  # no number twice
    assert sum(t.state == COMPLETE for t in trials.values()) == 2  # n_trials counts the retry, not the failure
    assert results(runs_dir / "kill" / "trial-0")["status"] == "completed"  # the retry finished trial 0's folder
