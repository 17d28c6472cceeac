"""Many arms at once: the executor the grid, calibration and Hydra's multirun share.

`run_grid` runs validated arms (`runner.Arm`), `jobs` at a time with the cores split between them (each arm
its own process, `projlab.sweeps.runner`), or each as a SLURM job under `launcher=slurm`
(`projlab.sweeps.slurm`), shown as they go (`projlab.sweeps.view`) and kept in `<runs>/<sweep>/sweep.json`
(every arm with its status, process id or SLURM job). Stop requests reach every running arm through the
runner's one signal forwarder.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from projlab.io import write_json
from projlab.results import read_results
from projlab.sweeps import runner, slurm
from projlab.sweeps.runner import Arm
from projlab.sweeps.view import open_view


def _arm_entry(
    arm: Arm, outcome: runner.ArmOutcome | None, pid: int | None = None, job: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = outcome.record if outcome else read_results(arm.run_dir)
    queued = job is not None and outcome is None  # a SLURM job not yet ended
    entry = {
        "name": arm.name,
        "run_dir": str(arm.run_dir),
        "overrides": list(arm.overrides),
        "status": "running" if pid or queued else (record or {}).get("status", "pending"),
        "accuracy": ((record or {}).get("metrics") or {}).get("accuracy"),
        "error": (record or {}).get("error"),
    }
    if outcome is not None:
        entry.update(returncode=outcome.returncode, seconds=round(outcome.seconds, 1), skipped=outcome.skipped)
    if pid:
        entry["pid"] = pid
    if job:
        entry.update(job)
    return entry


def write_sweep_json(
    sweep_dir: Path, name: str, arms: list[Arm], outcomes: dict[str, runner.ArmOutcome],
    running: dict[str, int] | None = None, jobs: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """`<runs>/<name>/sweep.json` (atomic): every arm with its current status; `running` maps the arms
    running now to their process ids, `jobs` the arms submitted to SLURM to their job (id, state, attempts)."""
    running, jobs = running or {}, jobs or {}
    entries = [_arm_entry(a, outcomes.get(a.name), running.get(a.name), jobs.get(a.name)) for a in arms]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    return write_json(
        sweep_dir / "sweep.json",
        {"name": name, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "counts": counts, "arms": entries},
    )


def _progress(outcome: runner.ArmOutcome) -> str:
    if outcome.holder:
        return f"skipped: {outcome.run_dir} is in use by {outcome.holder}"
    if outcome.status == "completed":
        acc = f" {outcome.accuracy:.3f}" if outcome.accuracy is not None else ""
        return f"completed{acc} ({'already done, skipped' if outcome.skipped else f'{outcome.seconds:.0f} s'})"
    return f"{outcome.status}: {outcome.error or '?'} ({outcome.seconds:.0f} s)"


def available_cores() -> int:
    """The cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def auto_jobs(arms: int, gpu: bool) -> int:
    """`--jobs auto`: where no GPU is visible, one arm per core with one thread each (measured on the tiny
    preset, 2 cores: two one-thread arms at once finished in 1.7-2.3x less wall time than the same two one after
    the other at two threads; docs/speed.md); with a GPU one arm at a time, since the arms would share it."""
    return 1 if gpu else max(1, min(arms, available_cores()))


def resolve_jobs(jobs: int | str, arms: int) -> int:
    """A --jobs value as a count: "auto" through `auto_jobs`, a number as given."""
    if jobs != "auto":
        return int(jobs)
    import torch  # only here: the rest of the driver never needs it

    return auto_jobs(arms, torch.cuda.is_available())


def arm_env(jobs: int) -> dict[str, str] | None:
    """The environment of an arm when `jobs` arms share the machine: the cores split evenly between them
    (torch takes its thread count from OMP_NUM_THREADS), so that parallel arms do not oversubscribe."""
    if jobs <= 1:
        return None
    threads = str(max(1, available_cores() // jobs))
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_grid(
    arms: list[Arm], sweep_dir: Path, name: str, out=sys.stdout, jobs: int | str = 1,
    launcher: DictConfig | None = None,
) -> list[runner.ArmOutcome]:
    """Run every arm (completed ones are skipped), `jobs` at a time ("auto": `auto_jobs`), shown as they go
    (`projlab.sweeps.view`: a live table on a terminal, else a line per event), keeping sweep.json current.
    After a signal no new arm starts; running arms record their end first. Under `launcher=slurm` every arm
    is a SLURM job (`projlab.sweeps.slurm`), as many at once as the cluster runs; a signal leaves the jobs
    running."""
    runner.forward_signals()
    if launcher is not None and launcher.name == "slurm":
        return _run_grid_slurm(arms, sweep_dir, name, out, launcher)
    jobs = resolve_jobs(jobs, len(arms))
    outcomes: dict[str, runner.ArmOutcome] = {}
    running: dict[str, int] = {}
    lock = threading.Lock()  # guards outcomes, running and sweep.json
    env = arm_env(jobs)
    write_sweep_json(sweep_dir, name, arms, outcomes)

    def run_one(i: int, arm: Arm) -> None:
        if runner.interrupted():
            return

        def started(pid: int) -> None:
            with lock:
                running[arm.name] = pid
                write_sweep_json(sweep_dir, name, arms, outcomes, running)
            view.started(i, pid)

        # launched and waited on by this same thread: the arm's parent-death signal follows the thread
        outcome = runner.run_arm(list(arm.overrides), arm.run_dir, env=env, on_start=started, rerun=arm.rerun,
                                 expected=arm.config)
        with lock:
            running.pop(arm.name, None)
            outcomes[arm.name] = outcome
            write_sweep_json(sweep_dir, name, arms, outcomes, running)
        view.finished(i, "skipped" if outcome.holder else outcome.status, _progress(outcome))

    with open_view(name, [(a.name, a.run_dir) for a in arms], out) as view:
        if jobs == 1:
            for i, arm in enumerate(arms, 1):
                run_one(i, arm)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in [pool.submit(run_one, i, arm) for i, arm in enumerate(arms, 1)]:
                    future.result()
    return [outcomes[a.name] for a in arms if a.name in outcomes]


def _run_grid_slurm(arms: list[Arm], sweep_dir: Path, name: str, out, launcher: DictConfig) -> list[runner.ArmOutcome]:
    queue = slurm.Queue(launcher, sweep_dir, name)
    outcomes: dict[str, runner.ArmOutcome] = {}

    def save(jobs: dict[str, slurm.Job]) -> None:
        write_sweep_json(sweep_dir, name, arms, outcomes, jobs={a: j.entry() for a, j in jobs.items()})

    with open_view(name, [(a.name, a.run_dir) for a in arms], out) as view:
        def on_event(i: int, kind: str, text: str, what: Any) -> None:
            if kind == "started":
                view.started(i, text)
            else:
                outcomes[arms[i - 1].name] = what
                view.finished(i, "skipped" if what.holder else what.status, _progress(what))

        outcomes.update(slurm.run_arms(arms, queue, launcher, on_event, save))
    still = [a.name for a in arms if a.name not in outcomes]
    if still and runner.interrupted():
        print(f"{len(still)} SLURM job(s) left queued or running; re-run the same command to re-attach "
              f"(or scancel them: their ids are in {sweep_dir / 'sweep.json'})", file=sys.stderr, flush=True)
    return [outcomes[a.name] for a in arms if a.name in outcomes]
