"""One configuration per run folder and one process at a time: other settings refused, a held folder left
alone, a dead holder's lock taken over, a damaged results.json named and kept (real tiny runs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_RUN
from sweep_helpers import ARM, grid, results, write_spec


# ---------------------------------------------------------------------------------------------------------
# one configuration per run folder, one process at a time (real tiny runs)
# ---------------------------------------------------------------------------------------------------------
def _trainings(run_dir: Path) -> int:
    """How many times the arm trained to its end: the last line each training prints."""
    return sum(": accuracy " in line for line in (run_dir / "train.log").read_text().splitlines())


@pytest.mark.slow
def test_other_settings_into_the_same_folder_are_one_error_line_and_rerun_sets_the_old_run_aside(runs_dir):
    arm = runs_dir / "twin" / "c_abstractor-m16-r112-s0-joint"
    first = grid("--projectors", "c_abstractor", "--tokens", "16", "--name", "twin", "--", *ARM)
    assert first.returncode == 0, first.stderr[-2000:]
    stamp = (arm / "results.json").stat().st_mtime_ns
    other = ["--projectors", "c_abstractor", "--tokens", "16", "--name", "twin", "--", *ARM, "stage.max_steps=4",
             "stage.lr=1e-3"]
    second = grid(*other)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), second.stderr
    assert "stage.max_steps 6 -> 4" in lines[0] and "stage.lr 0.0005 -> 0.001" in lines[0]
    assert "rerun=true" in lines[0] and "NAME=" in lines[0] and "completed" not in second.stdout
    assert (arm / "results.json").stat().st_mtime_ns == stamp and _trainings(arm) == 1
    # make train of the same arm says the same (with its own way out)
    train = subprocess.run([sys.executable, "-m", "projlab.train", *ARM, "projector=c_abstractor",
                            "projector.num_visual_tokens=16", "sweep=twin", "stage.max_steps=4", "stage.lr=1e-3"],
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 2 and "stage.max_steps 6 -> 4" in train.stderr and "run_name=" in train.stderr
    # rerun=true: trained again with the new settings; the first run is kept under replaced/
    third = grid(*other, "rerun=true")
    assert third.returncode == 0, third.stderr[-2000:]
    assert results(arm)["efficiency"]["steps"] == 4 and results(arm)["config"]["full"]["stage"]["lr"] == 1e-3
    (kept,) = (arm / "replaced").iterdir()
    assert results(kept)["efficiency"]["steps"] == 6 and (kept / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_resuming_a_checkpoint_of_other_settings_is_refused(runs_dir):
    base = [sys.executable, "-m", "projlab.train", *ARM, "projector=c_abstractor", "projector.num_visual_tokens=16",
            "sweep=res"]
    failed = subprocess.run([*base, "fail_at_step=4"], capture_output=True, text=True, timeout=300)
    arm = runs_dir / "res" / "c_abstractor-m16-r112-s0-joint"
    assert failed.returncode == 1 and (arm / "checkpoints" / "last.ckpt").exists()
    record = (arm / "results.json").read_text()
    other = subprocess.run([*base, "stage.lr=1e-3"], capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and other.stderr.count("error: ") == 1 and "stage.lr 0.0005 -> 0.001" in other.stderr
    assert (arm / "results.json").read_text() == record  # untouched
    resumed = subprocess.run(base, capture_output=True, text=True, timeout=300)  # the same settings: resumes
    assert resumed.returncode == 0 and "resuming from" in resumed.stdout


@pytest.mark.slow
def test_two_drivers_at_once_train_each_arm_exactly_once(runs_dir, tmp_path):
    spec = write_spec(tmp_path / "d.yaml", name="d", projectors=["c_abstractor", "resampler"], tokens=[16],
                      res=[112], overrides=ARM)
    cmd = [sys.executable, "-m", "projlab.sweeps.grid", "--spec", str(spec)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    assert all(p.returncode in (0, 1) for p in procs), [o[1][-2000:] for o in outs]
    arms = [runs_dir / "d" / "c_abstractor-m16-r112-s0-joint", runs_dir / "d" / "resampler-m16-r112-s0-joint"]
    for arm in arms:
        assert results(arm)["status"] == "completed" and _trainings(arm) == 1, (arm / "train.log").read_text()
    for out, _ in outs:  # each driver says, for each arm, what it saw at the end: completed, or held by the other
        for arm in arms:
            line = [ln for ln in out.splitlines() if f"] {arm.name} ..." in ln][-1]
            assert "completed" in line or ("skipped:" in line and "in use by pid" in line), line
    again = grid("--spec", str(spec))
    assert again.returncode == 0 and again.stdout.count("already done, skipped") == 2


@pytest.mark.slow
def test_a_held_run_folder_is_not_touched_and_a_dead_holders_lock_is_taken_over(runs_dir):
    from projlab import run_lock

    arm = runs_dir / "lock" / "blind-mall-r112-s0-joint"
    cmd = [sys.executable, "-m", "projlab.train", *TINY_RUN, "projector=blind", "sweep=lock"]
    with run_lock.hold(arm):  # this process holds it, as a running arm would
        busy = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert run_lock.holder(arm).startswith(f"pid {os.getpid()} ")
    assert busy.returncode == run_lock.BUSY_EXIT and f"in use by pid {os.getpid()} " in busy.stderr
    assert "Traceback" not in busy.stderr and sorted(p.name for p in arm.iterdir()) == [".lock"]
    # a holder that died: its line is left in the file, its flock went with it
    (arm / ".lock").write_text("pid 999999 on elsewhere since 2020-01-01 00:00:00\n")
    assert run_lock.holder(arm) is None
    taken = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert "took over the lock of pid 999999 on elsewhere" in taken.stdout and results(arm)["status"] == "completed"
    assert (arm / ".lock").read_text() == ""  # released


@pytest.mark.slow
def test_a_damaged_results_json_is_named_counted_failed_kept_and_resumed(runs_dir):
    arm = runs_dir / "dmg" / "blind-mall-r112-s0-joint"
    assert grid("--projectors", "blind", "--name", "dmg", "--", *TINY_RUN).returncode == 0
    text = (arm / "results.json").read_text()
    (arm / "results.json").write_text(text[: len(text) // 2])  # a copy cut short
    again = grid("--projectors", "blind", "--name", "dmg", "--", *TINY_RUN)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"warning: damaged {arm / 'results.json'}" in again.stderr and "counted as failed" in again.stderr
    assert results(arm)["status"] == "completed" and results(arm)["efficiency"]["resumed_from_step"] == 6
    (kept,) = arm.glob("results.damaged-*.json")
    assert kept.read_text() == text[: len(text) // 2]  # nothing written is lost


def test_a_folder_of_an_older_search_trial_still_resumes_but_other_settings_do_not(runs_dir):
    """A trial folder from before the pruning callback came as `callbacks.pruning` holds an `optuna` key in its
    config.yaml: the comparison leaves it out (`run_folder.RETIRED`), and still sees a real difference."""
    from omegaconf import OmegaConf

    from projlab.config import load_config
    from projlab.run_folder import CONFIG_FILE, config_problem

    arm = runs_dir / "st" / "trial-0"
    arm.mkdir(parents=True)
    asked = load_config([*TINY_RUN, "+callbacks.pruning.trial=0"])  # callbacks are management: not compared
    old = OmegaConf.to_container(asked, resolve=True)
    del old["callbacks"]["pruning"]
    old["optuna"] = {"storage": "sqlite:///study.db", "study": "st", "trial": 0}
    OmegaConf.save(OmegaConf.create(old), arm / CONFIG_FILE)
    assert config_problem(arm, asked, "ways out") is None
    other = load_config([*TINY_RUN, "seed=1"])
    assert "seed 0 -> 1" in config_problem(arm, other, "ways out")
