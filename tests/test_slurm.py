"""`launcher=slurm` against a real SLURM controller (scripts/local_slurm.sh starts a one-node cluster on this
machine; .ci/run does so before the tests): a sweep's arms as jobs, a cancelled job resubmitted and resumed
from its checkpoint, a killed driver re-attaching without submitting any arm twice, and the same results
as a local run. Without sbatch or an answering controller the tests skip, saying why."""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sweep_helpers import ARM, grid, results, wait_for, write_spec


def _slurm_missing() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not installed (scripts/local_slurm.sh installs and starts a one-node SLURM)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the SLURM controller does not answer (scripts/local_slurm.sh starts one)"
    if ping.returncode or "UP" not in ping.stdout:
        return "the SLURM controller does not answer (scripts/local_slurm.sh starts one)"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(_slurm_missing()), reason=_slurm_missing() or "")]
SLURM = ["launcher=slurm", "launcher.poll_s=0.5", "launcher.cpus_per_task=1", "launcher.time_min=10"]


def job_headers(run_dir: Path) -> list[str]:
    """The SLURM job ids that ran the arm, one per job, from the line each job writes to train.log."""
    return re.findall(r"^=== .* SLURM job (\d+) on ", (run_dir / "train.log").read_text(), flags=re.M)


def sweep_arms(sweep_dir: Path) -> dict[str, dict]:
    try:
        return {a["name"]: a for a in json.loads((sweep_dir / "sweep.json").read_text())["arms"]}
    except (FileNotFoundError, ValueError, KeyError):
        return {}


def progress_step(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "progress.json").read_text())["step"]
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_a_cancelled_job_resumes_and_a_restarted_driver_submits_no_arm_twice(runs_dir, tmp_path):
    # 60 steps with a checkpoint every 3: a job cancelled after step 6 has a checkpoint to resume from, and
    # is cancelled long before its end
    spec = write_spec(tmp_path / "s.yaml", name="sl", projectors=["c_abstractor"], tokens=[16, 64, 144], res=[112],
                      overrides=[*ARM, "stage.max_steps=60"])
    sweep_dir = runs_dir / "sl"
    first = sweep_dir / "c_abstractor-m16-r112-s0-joint"
    cmd = [sys.executable, "-m", "projlab.sweeps.grid", "--spec", str(spec), "--", *SLURM]
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: progress_step(first) >= 6 and (first / "checkpoints" / "last.ckpt").exists(),
                 what="the first arm to pass step 6", proc=driver)
        job = sweep_arms(sweep_dir)[first.name]["job_id"]
        subprocess.run(["scancel", job], check=True)
        wait_for(lambda: sweep_arms(sweep_dir)[first.name].get("attempts") == 2, what="the resubmission", proc=driver)
        driver.send_signal(signal.SIGKILL)  # the driver dies; its jobs run on
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert "re-attached" in again.stdout
    arms = sweep_arms(sweep_dir)
    assert [a["status"] for a in arms.values()] == ["completed"] * 3
    resumed = results(first)
    assert resumed["efficiency"]["resumed_from_step"] >= 3 and resumed["efficiency"]["steps"] == 60
    cancelled, resubmitted = job_headers(first)
    assert cancelled == job and resubmitted == arms[first.name]["job_id"] != job
    for name, arm in arms.items():  # each arm ran in one job, but the cancelled one in two
        if name != first.name:
            assert job_headers(sweep_dir / name) == [arm["job_id"]], name
            assert results(sweep_dir / name)["efficiency"]["resumed_from_step"] == 0


def test_a_slurm_sweep_gives_the_results_of_a_local_one(runs_dir):
    args = ["--projectors", "c_abstractor", "--tokens", "16,64", "--res", "112"]
    local = grid(*args, "--name", "here", "--jobs", "2", "--", *ARM)  # one thread per arm, as each job
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    remote = grid(*args, "--name", "there", "--", *ARM, *SLURM)
    assert remote.returncode == 0, remote.stdout[-2000:] + remote.stderr[-2000:]
    assert "as SLURM jobs" in remote.stdout and "started (SLURM job" in remote.stdout
    for arm in ("c_abstractor-m16-r112-s0-joint", "c_abstractor-m64-r112-s0-joint"):
        a, b = results(runs_dir / "here" / arm), results(runs_dir / "there" / arm)
        assert len(job_headers(runs_dir / "there" / arm)) == 1
        assert a["metrics"]["per_category"] == b["metrics"]["per_category"]
        assert a["metrics"]["accuracy"] == b["metrics"]["accuracy"]
        assert b["metrics"]["loss"] == pytest.approx(a["metrics"]["loss"], rel=1e-4)
    table = [ln for ln in remote.stdout.splitlines() if ln.startswith("c_abstractor-")]
    assert table == [ln for ln in local.stdout.splitlines() if ln.startswith("c_abstractor-")] or all(
        ln.split()[:4] == other.split()[:4]  # the printed accuracies; step and wall times differ
        for ln, other in zip(table, [ln for ln in local.stdout.splitlines() if ln.startswith("c_abstractor-")]))


def test_a_bad_launcher_setting_is_one_error_line(runs_dir):
    bad = grid("--projectors", "c_abstractor", "--tokens", "16", "--", *ARM, "launcher=slurm", "launcher.gpus=2")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "launcher.gpus: not a setting of launcher=slurm" in bad.stderr
