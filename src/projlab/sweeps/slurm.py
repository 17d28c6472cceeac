"""Arms as SLURM jobs, submitted through submitit: `launcher=slurm` of the sweep drivers.

Each arm is one job (`experiments/launcher/slurm.yaml`: partition, time, nodes, GPUs per node, CPUs per task,
extra sbatch options) whose tasks each run the arm's `python -m projlab.train <overrides>` (one task per GPU:
Lightning reads the ranks from SLURM), its output appended to `<run_dir>/train.log` after a line naming the
job. As with local arms, the arm's results.json is the only thing read back.

The driver asks `squeue` every `poll_s` (no accounting database needed): a job no longer listed has ended,
and its results.json says how. An arm that ended unfinished (a crash, a preemption, `scancel`, the time
limit: the job gets SIGTERM 120 s before it, so the run records its end) is resubmitted up to `retries`
times and resumes from its last checkpoint. sweep.json records each arm's job id, state and attempts, and a
job is named `projlab:<sweep>/<arm>`: a driver started again re-attaches to the jobs still queued or running
(by the id in sweep.json, or by name where it was killed before writing it) and submits only the arms that
are neither done nor queued, so no arm runs twice. Stopping a grid's driver leaves its jobs running
(re-run it to re-attach); a search worker that is stopped cancels its trial's job.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from projlab import run_lock
from projlab.errors import UserError
from projlab.results import read_results, results_path
from projlab.sweeps import runner
from projlab.sweeps.runner import Arm

JOB_PREFIX = "projlab:"
END_SIGNAL = "TERM@120"  # SIGTERM to every task 120 s before the time limit: the run records its end
FINAL = ("completed", "pruned")  # an arm that ended otherwise is resubmitted while it has retries


@dataclass
class Job:
    """One submission of an arm: its SLURM id, which attempt it is, when it was submitted (epoch s)."""

    job_id: str
    attempts: int
    submitted: float
    state: str = "PENDING"

    def entry(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "job_state": self.state, "attempts": self.attempts,
                "submitted": round(self.submitted, 1)}


def check_available() -> None:
    for tool in ("sbatch", "squeue", "srun", "scontrol"):
        if shutil.which(tool) is None:
            raise UserError(f"launcher=slurm: {tool} is not on PATH; run on a SLURM login node, or use launcher=local")


def job_name(sweep: str, arm: str) -> str:
    return f"{JOB_PREFIX}{sweep}/{arm}"


def run_in_job(cmd: list[str], log_path: str) -> int:
    """Run in the job by every task: the arm's command, its output appended to the arm's train.log."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", env.get("SLURM_CPUS_PER_TASK", "1"))  # torch would take every core
    with open(log_path, "ab") as log:
        if env.get("SLURM_PROCID", "0") == "0":
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            job = env.get("SLURM_JOB_ID", "?")
            log.write(f"\n=== {stamp} SLURM job {job} on {socket.gethostname()}: {' '.join(cmd)}\n".encode())
            log.flush()
        return subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


class Queue:
    """Submits a sweep's arms as jobs and reads their states from squeue."""

    def __init__(self, cfg: DictConfig, sweep_dir: Path, sweep: str) -> None:
        check_available()
        self.cfg, self.sweep = cfg, sweep
        self.folder = sweep_dir / str(cfg.folder)
        self.user = getpass.getuser()

    def _executor(self, name: str):
        import submitit

        cfg = self.cfg
        gpus = int(cfg.gpus_per_node)
        params: dict[str, Any] = {
            "job_name": name, "time": int(cfg.time_min), "nodes": int(cfg.nodes), "ntasks_per_node": max(1, gpus),
            "cpus_per_task": int(cfg.cpus_per_task), "setup": [str(s) for s in cfg.setup], "stderr_to_stdout": True,
            "additional_parameters": {"signal": END_SIGNAL, **OmegaConf.to_container(cfg.sbatch, resolve=True)},
        }
        if cfg.partition:
            params["partition"] = str(cfg.partition)
        if gpus:
            params["gpus_per_node"] = gpus
        if cfg.mem_gb:
            params["mem"] = f"{int(cfg.mem_gb)}GB"
        executor = submitit.SlurmExecutor(folder=str(self.folder / "%j"), max_num_timeout=0)
        try:
            executor.update_parameters(**params)
        except ValueError as err:
            raise UserError(f"launcher=slurm: {str(err).splitlines()[0]}") from None
        return executor

    def submit(self, arm: str, overrides: list[str], run_dir: Path) -> Job:
        run_dir.mkdir(parents=True, exist_ok=True)
        executor = self._executor(job_name(self.sweep, arm))
        try:
            job = executor.submit(run_in_job, runner.train_command(overrides), str(run_dir / runner.LOG_FILE))
        except Exception as err:  # sbatch's own message: a bad partition, an account, the controller down
            text = str(getattr(err, "stderr", "") or err).strip().splitlines()
            raise UserError(f"sbatch refused {arm}: {text[-1] if text else type(err).__name__}") from None
        return Job(str(job.job_id), 1, time.time())

    def live(self) -> dict[str, tuple[str, str]]:
        """Job id -> (state, name) of this user's jobs not yet ended; SlurmUnavailable where squeue fails."""
        cmd = ["squeue", "-h", "-u", self.user, "-o", "%i|%T|%j"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            raise SlurmUnavailable("squeue did not answer in 60 s") from None
        if out.returncode:
            raise SlurmUnavailable(f"squeue: {(out.stderr.strip().splitlines() or ['failed'])[-1]}")
        jobs = {}
        for line in out.stdout.splitlines():
            job_id, state, name = (line.split("|", 2) + ["", ""])[:3]
            jobs[job_id.strip()] = (state.strip(), name.strip())
        return jobs

    def cancel(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], capture_output=True, timeout=60)

    @staticmethod
    def ended_state(job_id: str) -> str:
        """The final state SLURM still remembers (CANCELLED, TIMEOUT, ...), else 'ended'."""
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
        state = next((w.partition("=")[2] for w in out.stdout.split() if w.startswith("JobState=")), "")
        return state or "ended"


class SlurmUnavailable(Exception):
    """squeue did not answer: the driver tries again at its next poll."""


def previous_jobs(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Arm name -> its entry in the sweep.json an earlier driver left (job id, attempts...)."""
    import json

    try:
        data = json.loads((sweep_dir / "sweep.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {a["name"]: a for a in data.get("arms", []) if isinstance(a, dict) and a.get("name")}


def finish(job: Job, run_dir: Path, submitted: float) -> runner.ArmOutcome:
    """What became of an arm whose job has ended: its results.json, or a failure recorded for it where the
    job ended without recording its end (killed, never started)."""
    record = read_results(run_dir)
    status = record.get("status") if record else None
    written = record is not None and results_path(run_dir).stat().st_mtime >= submitted - 1.0
    if status == "completed" or (written and status in ("failed", "pruned")):
        return runner.ArmOutcome(run_dir, status, record, None, time.time() - submitted)
    with run_lock.try_hold(run_dir) as held:
        if not held:  # another process (a local run) holds the folder: the job found it busy
            holder = run_lock.holder(run_dir) or "another process"
            return runner.ArmOutcome(run_dir, "running", record, None, 0.0, skipped=True, holder=holder)
        how = f"SLURM job {job.job_id} {job.state}"
        record = runner.record_crash(run_dir, how, run_dir / runner.LOG_FILE)
    return runner.ArmOutcome(run_dir, "failed", record, None, time.time() - submitted)


Event = Callable[[int, str, str, "runner.ArmOutcome | Job"], None]


def run_arms(
    arms: list[Arm], queue: Queue, cfg: DictConfig, on_event: Event, save: Callable[[dict[str, Job]], None],
    cancel_on_stop: bool = False,
) -> dict[str, runner.ArmOutcome]:
    """Submit (or re-attach to) every arm not completed, poll until each is done; resubmit an unfinished
    arm while it has retries. `on_event(index, kind, text, outcome-or-job)`: kind is started (text says
    how), or ended. `save(jobs)` after every change. After a stop request no job is submitted and the
    jobs are left (or cancelled, `cancel_on_stop`); the outcomes so far are returned."""
    outcomes: dict[str, runner.ArmOutcome] = {}
    jobs: dict[str, Job] = {}
    live = queue.live()
    by_name = {name: job_id for job_id, (_, name) in live.items()}
    before = previous_jobs(queue.folder.parent)
    for i, arm in enumerate(arms, 1):
        old = before.get(arm.name) or {}
        job_id = str(old.get("job_id")) if str(old.get("job_id")) in live else by_name.get(job_name(queue.sweep, arm.name))
        if job_id and not runner.interrupted():
            submitted = float(old.get("submitted") or 0) if str(old.get("job_id")) == job_id else 0.0
            jobs[arm.name] = Job(job_id, int(old.get("attempts") or 1), submitted, live[job_id][0])
            on_event(i, "started", f"SLURM job {job_id}, re-attached", jobs[arm.name])
            continue
        done = runner.settled(arm.run_dir, arm.rerun, arm.config)  # the checks a local launch makes
        if done is not None:
            if old.get("job_id"):  # it ended while no driver watched: its job stays on record
                jobs[arm.name] = Job(str(old["job_id"]), int(old.get("attempts") or 1),
                                     float(old.get("submitted") or 0), Queue.ended_state(str(old["job_id"])))
            outcomes[arm.name] = done
            on_event(i, "ended", "", done)
        elif not runner.interrupted():
            jobs[arm.name] = queue.submit(arm.name, list(arm.overrides), arm.run_dir)
            save(jobs)
            on_event(i, "started", f"SLURM job {jobs[arm.name].job_id}", jobs[arm.name])
    save(jobs)
    while not runner.interrupted() and any(a.name in jobs and a.name not in outcomes for a in arms):
        _sleep(float(cfg.poll_s))
        try:
            live = queue.live()
        except SlurmUnavailable as err:
            print(f"slurm: {err}; trying again", file=sys.stderr, flush=True)
            continue
        for i, arm in enumerate(arms, 1):
            job = jobs.get(arm.name)
            if job is None or arm.name in outcomes:
                continue
            if job.job_id in live:
                job.state = live[job.job_id][0]
                continue
            job.state = Queue.ended_state(job.job_id)
            outcome = finish(job, arm.run_dir, job.submitted)
            if outcome.status not in FINAL and not outcome.holder and job.attempts <= int(cfg.retries) \
                    and not runner.interrupted():
                jobs[arm.name] = queue.submit(arm.name, list(arm.overrides), arm.run_dir)
                jobs[arm.name].attempts = job.attempts + 1
                save(jobs)
                why = (outcome.error or outcome.status).split(";")[0]
                on_event(i, "started", f"SLURM job {jobs[arm.name].job_id}, attempt {job.attempts + 1} after {why}",
                         jobs[arm.name])
                continue
            outcomes[arm.name] = outcome
            on_event(i, "ended", "", outcome)
        save(jobs)
    if runner.interrupted() and cancel_on_stop:
        for arm in arms:
            if arm.name in jobs and arm.name not in outcomes:
                queue.cancel(jobs[arm.name].job_id)
    return outcomes


def _sleep(seconds: float) -> None:
    """Sleep, waking early on a stop request."""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not runner.interrupted():
        time.sleep(min(0.2, end - time.monotonic()))
