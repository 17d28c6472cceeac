"""Optuna searches over `projlab.train`: ask/tell on shared storage, one process per trial.

    python -m projlab.sweeps.search sweeps/<file>.yaml [--workers N] [--storage URL] [--n-trials N] [-- overrides]

The YAML declares the study (see sweeps/lr_c_abstractor.yaml): `study`, `n_trials`, `direction`,
`objective` (a dotted path in results.json, e.g. metrics.accuracy), `monitor` (the validation metric the
pruner sees, default val/acc), `overrides` (fixed), `space` (key: {type: float|int|categorical, ...}),
`sampler` ({type: tpe|random, seed, ...}), `pruner` ({type: median|threshold|..., ...}), `enqueue` (points
to try first, added when the study is created) and `heartbeat` ({interval_s, grace_s, max_retry}: a database
server's heartbeat, `projlab.sweeps.storage.Heartbeat`). It is read and checked by
`projlab.sweeps.specs.load_search_spec`.

Storage: `sqlite:///<runs>/<study>/study.db` by default, any RDB URL, or `journal:<path>`. `--workers N` starts
N worker processes, each running its own ask/tell loop on the storage until `n_trials` trials are finished or
running in total; `ask()` gives each worker its own trial. Each trial is `projlab.train <overrides> <sampled>
sweep=<study> run_name=trial-<number> +callbacks.pruning._target_=...OptunaPruning
+callbacks.pruning.storage=... +callbacks.pruning.study=... +callbacks.pruning.trial=<number>` in its own
process; the objective is read from its results.json; the trial process reports to the pruner itself
(projlab.sweeps.pruning, a callback given through config). Re-running the command continues the study; trials
left RUNNING by a dead worker on this host are marked failed first. On a database server (`--storage
postgresql://...`, for workers on many nodes) each worker beats for its running trial instead: a trial whose
worker died anywhere is marked failed when its heartbeat is `grace_s` old and run again as a new trial of the
same parameters in the first one's folder (resuming from its checkpoint); a retried trial does not count twice
in n_trials, and a worker that has asked its last trial waits for the others' running trials, so one that died
is retried.
With the override `launcher=slurm` each trial runs as a SLURM job (`projlab.sweeps.slurm`).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import optuna
from filelock import FileLock
from optuna.distributions import CategoricalDistribution
from omegaconf import DictConfig
from optuna.trial import TrialState

from projlab.cli import ArgumentParser, positive_int
from projlab.config import load_config
from projlab.errors import UserError, exit_on_user_error
from projlab.sweeps import runner
from projlab.sweeps.grid import ARM_DEFAULTS, Arm, check_arm, parse_with_overrides
from projlab.sweeps.launcher import split_launcher
from projlab.sweeps.specs import RESERVED, SearchSpec, build_pruner, build_sampler, check_reserved, load_search_spec
from projlab.sweeps.storage import Heartbeat, default_storage_url, is_server, normalise_url, open_storage

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


# ---- overrides --------------------------------------------------------------------------------------
# The callback through which a trial reports to its study; it enters the run as a config entry (`callbacks.
# <name>`, built by projlab.build.callbacks), since train.py sits below the sweeps and never imports them
PRUNING = "callbacks.pruning"
PRUNING_CLASS = "projlab.sweeps.pruning.OptunaPruning"


def pruning_overrides(storage_url: str, study: str, trial: int) -> list[str]:
    """The overrides that make a trial process report to trial `trial` of `study` and stop when pruned."""
    return [f"+{PRUNING}._target_={PRUNING_CLASS}", f"+{PRUNING}.storage={hydra_value(storage_url)}",
            f"+{PRUNING}.study={hydra_value(study)}", f"+{PRUNING}.trial={trial}"]


def hydra_value(value: Any) -> str:
    """A sampled value written for a Hydra override (strings quoted when they are not plain words)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if isinstance(value, int):
        return text
    looks_typed = text.lower() in ("true", "false", "null") or re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?", text.lower())
    if not looks_typed and re.fullmatch(r"[A-Za-z0-9_./:@+-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def trial_overrides(spec: SearchSpec, params: dict[str, Any], extra: list[str]) -> list[str]:
    return [*ARM_DEFAULTS, *spec.overrides, *(f"{k}={hydra_value(v)}" for k, v in params.items()), *extra]


def _ends(spec: SearchSpec, end: int) -> dict[str, Any]:
    out = {}
    for key, dist in spec.space.items():
        if isinstance(dist, CategoricalDistribution):
            out[key] = dist.choices[end]
        else:
            out[key] = dist.low if end == 0 else dist.high
    return out


def check_spec(spec: SearchSpec, extra: list[str]) -> Path:
    """Compose a trial at both ends of the space before anything runs; return the runs root."""
    check_reserved([*spec.overrides, *extra], "the search", "", (*RESERVED, PRUNING))
    problems: dict[str, str] = {}  # error -> where (the same mistake at both ends is reported once)
    for end, where in ((0, "the low end"), (-1, "the high end")):
        try:
            check_arm([*trial_overrides(spec, _ends(spec, end), extra), f"sweep={spec.study}"])
        except UserError as err:
            problems.setdefault(str(err), where)
    if problems:
        raise UserError("; ".join(f"{err} (a trial at {where} of the space)" for err, where in problems.items()))
    return Path(load_config([*spec.overrides, *extra]).paths.runs_root)


def get_path(record: dict[str, Any], dotted: str) -> Any:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# ---- the study --------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_study(spec: SearchSpec, storage_url: str, study_dir: Path) -> optuna.Study:
    """Create or load the study, record its pruner and monitor for the trial processes, enqueue the spec's
    points on creation, and fail the trials a dead worker of this host left RUNNING."""
    storage = open_storage(storage_url, _heartbeat(spec, storage_url))
    new = spec.study not in optuna.study.get_all_study_names(storage)
    if new and study_dir.is_dir() and any(study_dir.glob("trial-*")):
        raise UserError(
            f"{study_dir} holds trial folders but storage {storage_url} has no study {spec.study!r}: "
            "give the storage they came from (--storage), or another study name"
        )
    study = optuna.create_study(
        study_name=spec.study, storage=storage, direction=spec.direction, load_if_exists=True,
    )
    if study.direction.name.lower() != spec.direction:
        raise UserError(
            f"study {spec.study!r} exists with direction {study.direction.name.lower()}, not {spec.direction}"
        )
    study.set_user_attr("pruner", spec.pruner)
    study.set_user_attr("monitor", spec.monitor)
    study.set_user_attr("objective", spec.objective)
    if new:
        for point in spec.enqueue:
            study.enqueue_trial({str(k): v for k, v in point.items()})
    if is_server(storage_url):  # trials of dead workers fail by their heartbeat, and are retried
        return study
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if owner == host and pid.isdigit() and not _alive(int(pid)):
            study.tell(t.number, state=TrialState.FAIL)
            print(f"trial {t.number}: its worker (pid {pid}) is gone; marked failed", flush=True)
    return study


def _tell(study: optuna.Study, trial: optuna.trial.Trial, spec: SearchSpec, outcome: runner.ArmOutcome) -> str:
    """Tell the study what the trial's results.json says; return the progress text."""
    trial.set_user_attr("run_dir", str(outcome.run_dir))
    if outcome.status == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
        return f"pruned at step {get_path(outcome.record or {}, 'efficiency.steps')}"
    value = get_path(outcome.record or {}, spec.objective) if outcome.status == "completed" else None
    if isinstance(value, (int, float)) and math.isfinite(value):
        study.tell(trial, float(value))
        return f"completed {spec.objective}={value:.4g}"
    error = outcome.error if outcome.status != "completed" else f"no finite {spec.objective} in results.json"
    trial.set_user_attr("error", error)
    study.tell(trial, state=TrialState.FAIL)
    return f"failed: {error}"


def _heartbeat(spec: SearchSpec, storage_url: str) -> Heartbeat | None:
    return spec.heartbeat if is_server(storage_url) else None


def counted(study: optuna.Study) -> int:
    """Trials that count towards n_trials: finished or running, less the failed ones that were retried
    (a retry, waiting or run, stands in for the trials it repeats)."""
    trials = study.get_trials(deepcopy=False)
    repeated = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    return sum(t.state in COUNTED and t.number not in repeated for t in trials)


@contextmanager
def beating(storage: optuna.storages.BaseStorage, trial: optuna.trial.Trial, beat: Heartbeat | None) -> Iterator[None]:
    """Record the trial's heartbeat every interval while the trial runs (Optuna does so only in optimize())."""
    if beat is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception as err:  # a passing database error: the next beat may get through
                print(f"heartbeat of trial {trial.number}: {str(err).splitlines()[0]}", file=sys.stderr, flush=True)
            if stop.wait(beat.interval_s):
                return

    thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_trial(
    overrides: list[str], run_dir: Path, study: str, launcher: DictConfig | None,
) -> runner.ArmOutcome:
    """Run one trial where the launcher says: a process here, or a SLURM job (cancelled if the worker stops)."""
    if launcher is None or launcher.name != "slurm":
        return runner.run_arm(overrides, run_dir)
    from projlab.sweeps import slurm

    arm = Arm(run_dir.name, run_dir, tuple(overrides), 0)
    outcomes = slurm.run_arms([arm], slurm.Queue(launcher, run_dir.parent, study), launcher,
                              lambda *event: None, lambda jobs: None, cancel_on_stop=True)
    return outcomes.get(arm.name) or runner.ArmOutcome(run_dir, "failed", {"error": "stopped"}, None, 0.0)


def work(
    spec: SearchSpec, storage_url: str, n_trials: int, worker: int, extra: list[str],
    launcher: DictConfig | None = None,
) -> int:
    """One worker's ask/tell loop until `n_trials` trials are counted in the study; returns an exit code."""
    runner.forward_signals()
    beat = _heartbeat(spec, storage_url)
    storage = open_storage(storage_url, beat)
    study = optuna.load_study(
        study_name=spec.study, storage=storage, sampler=build_sampler(spec.sampler, worker),
        pruner=build_pruner(spec.pruner),
    )
    runs_root = Path(load_config([*spec.overrides, *extra]).paths.runs_root)
    study_dir = runs_root / spec.study
    me = f"{socket.gethostname()}:{os.getpid()}"
    while not runner.interrupted():
        with FileLock(str(study_dir / ".ask.lock")):  # count and ask as one step: no trial beyond n_trials
            if beat is not None:
                _fail_stale(study)
            if counted(study) >= n_trials:
                running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if beat is None or not running:
                    break
                trial = None  # others' trials still run: one of them may be a dead worker's, to be retried
            else:
                trial = study.ask(spec.space)
                trial.set_user_attr("worker", me)
        if trial is None:
            time.sleep(beat.interval_s)
            continue
        first = storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
        # a retry runs on in the first trial's folder, resuming from its checkpoint
        folder = f"trial-{first if first is not None else trial.number}"
        overrides = [
            *trial_overrides(spec, trial.params, extra), f"sweep={spec.study}", f"run_name={folder}",
            *pruning_overrides(storage_url, spec.study, trial.number),
        ]
        with beating(storage, trial, beat):
            outcome = run_trial(overrides, study_dir / folder, spec.study, launcher)
        text = _tell(study, trial, spec, outcome)
        params = " ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        print(f"[worker {worker}] trial {trial.number} {params} ... {text} ({outcome.seconds:.0f} s)", flush=True)
    return 128 + runner.interrupted() if runner.interrupted() else 0


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(study: optuna.Study, spec: SearchSpec) -> tuple[str, int]:
    """The end-of-search summary and the number of complete trials."""
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in trials) for s in TrialState}
    lines = [
        f"study {spec.study}: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed"
        + "".join(f", {counts[s]} {s.name.lower()}" for s in (TrialState.RUNNING, TrialState.WAITING) if counts[s])
    ]
    if counts[TrialState.COMPLETE]:
        best = study.best_trial
        params = ", ".join(f"{k}={_short(v)}" for k, v in best.params.items())
        lines.append(f"best trial {best.number}: {spec.objective} = {best.value:.4g}  ({params})")
    else:
        lines.append("no trial completed")
    return "\n".join(lines), counts[TrialState.COMPLETE]


# ---- command line -----------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m projlab.sweeps.search", description=__doc__.split("\n\n")[0])
    p.add_argument("spec", help="search spec YAML, e.g. sweeps/lr_c_abstractor.yaml")
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes sharing the study (default 1)")
    p.add_argument("--storage", help="sqlite:///path.db, another RDB URL, or journal:<path> (default: "
                                     "sqlite:///<runs>/<study>/study.db)")
    p.add_argument("--n-trials", type=positive_int, help="total trials (replaces the spec's n_trials)")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the search for its workers
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every trial (after --)")
    return parse_with_overrides(p, argv)


def _start_workers(args: argparse.Namespace, storage_url: str, n_trials: int) -> list[subprocess.Popen]:
    base = [sys.executable, "-m", "projlab.sweeps.search", args.spec, "--storage", storage_url,
            "--n-trials", str(n_trials)]
    return [runner.spawn([*base, "--worker-index", str(i), "--", *args.given]) for i in range(args.workers)]


def _wait_workers(procs: list[subprocess.Popen]) -> list[int]:
    """Wait for every worker; a SIGTERM/SIGINT to the search is passed on to each of them (the runner's
    forwarder, as to a sweep's arms); each then lets its trial record its end."""
    runner.forward_signals()
    with runner.forwarding(procs):
        return [p.wait() for p in procs]


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.given = list(args.overrides)  # the workers' command lines: launcher overrides included
    launcher, args.overrides = split_launcher(args.overrides)
    spec = load_search_spec(args.spec)
    n_trials = args.n_trials or spec.n_trials
    if args.worker_index is not None:  # a worker started by the search command below
        sys.exit(work(spec, args.storage, n_trials, args.worker_index, args.overrides, launcher))
    study_dir = check_spec(spec, args.overrides) / spec.study
    study_dir.mkdir(parents=True, exist_ok=True)
    storage_url = normalise_url(args.storage or default_storage_url(study_dir))
    study = prepare_study(spec, storage_url, study_dir)
    print(f"search {spec.study}: {n_trials} trial(s), {args.workers} worker(s), storage {storage_url}", flush=True)
    t0 = time.perf_counter()
    if args.workers == 1:
        codes = [work(spec, storage_url, n_trials, 0, args.overrides, launcher)]
    else:
        codes = _wait_workers(_start_workers(args, storage_url, n_trials))
    text, complete = report(study, spec)
    print(f"\n{text}\n({time.perf_counter() - t0:.0f} s; {study_dir})")
    stopped = [c for c in codes if c > 128]
    if stopped or runner.interrupted():
        print("search stopped by a signal; re-run the same command to continue the study", file=sys.stderr)
        sys.exit(stopped[0] if stopped else 128 + (runner.interrupted() or 15))
    sys.exit(0 if complete and not any(codes) else 1)


if __name__ == "__main__":
    main()
