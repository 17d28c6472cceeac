"""Run one arm as its own process and read back its status.

An arm is `python -m projlab.train <overrides>` in its own process group, its output appended to
`<run_dir>/train.log`. The arm's results.json is the only thing read back. A process that dies without
recording its end (SIGKILL, out of memory, a config error before training) is recorded here as failed with
its exit code or signal and the last line of its log, so a sweep always knows what happened to every arm.
A completed results.json is never rewritten: re-running an arm whose result is completed skips it (where
its stored settings are the ones asked for; `rerun` trains it again). An arm whose folder another process
holds (`projlab.run_lock`: a second sweep, a `make train`) is skipped, its holder named, and not recorded.
These checks before a launch are `settled`, which the SLURM launcher (`projlab.sweeps.slurm`) runs too.

Signals: `forward_signals()` makes SIGTERM/SIGINT go to every running arm's process group (a parallel
sweep runs arms from several threads; a search passes them to its worker processes the same way,
`forwarding`); `run_arm` then waits for the arm to record its end (Lightning turns SIGTERM into a failed
result, resumable from its last checkpoint) and the caller sees `interrupted()` and stops. The arm also
gets SIGTERM if the sweep process itself is killed (Linux parent-death signal), so no orphan keeps training
beside a resumed sweep.

Used by `projlab.sweeps.executor` (the grid and calibration), `projlab.sweeps.search` and `projlab.sweeps.slurm`.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from projlab import run_lock
from projlab.results import read_results, results_path, write_results
from projlab.run_folder import config_problem

LOG_FILE = "train.log"
GRACE_S = 60.0  # how long an arm may take to record its end after SIGTERM before it is killed

_running: set[subprocess.Popen] = set()  # every arm process alive now (a parallel sweep runs several)
_running_lock = threading.Lock()
_interrupt: int | None = None


@dataclass
class ArmOutcome:
    """What became of one arm: its status as recorded in its results.json (plus how the process ended)."""

    run_dir: Path
    status: str  # completed | failed | pruned | running (only if another process holds the arm)
    record: dict[str, Any] | None
    returncode: int | None  # None when the arm was not launched (already completed, or held)
    seconds: float
    skipped: bool = False
    holder: str | None = None  # who holds the arm's folder, where another process does

    @property
    def error(self) -> str | None:
        return (self.record or {}).get("error")

    @property
    def accuracy(self) -> float | None:
        return ((self.record or {}).get("metrics") or {}).get("accuracy")


@dataclass(frozen=True)
class Arm:
    """One validated arm: its folder name (the run name train.py derives), folder and Hydra overrides;
    `config`, the resolved config asked for, is what a completed run in its folder must have been."""

    name: str
    run_dir: Path
    overrides: tuple[str, ...]
    num_visual_tokens: int
    rerun: bool = False
    config: dict[str, Any] | None = field(default=None, compare=False, hash=False)


def settled(run_dir: Path, rerun: bool = False, expected: dict[str, Any] | None = None) -> ArmOutcome | None:
    """The outcome of an arm that must not be launched, whatever launches it (a process here, a SLURM job):
    completed already (and not `rerun`): skipped where its stored settings are `expected` (where given),
    else failed with what differs; or held by another process: skipped, its holder named. None: launch it."""
    previous = read_results(run_dir)
    if previous and previous.get("status") == "completed" and not rerun:
        problem = config_problem(run_dir, expected, "rerun=true replaces it") if expected else None
        if problem:  # written by another process since the sweep checked: not this arm's result
            return ArmOutcome(run_dir, "failed", {**previous, "error": problem}, None, 0.0)
        return ArmOutcome(run_dir, "completed", previous, None, 0.0, skipped=True)
    holder = run_lock.holder(run_dir)
    if holder:
        return ArmOutcome(run_dir, "running", previous, None, 0.0, skipped=True, holder=holder)
    return None


def train_command(overrides: list[str]) -> list[str]:
    """The command line of one arm: the single-arm entry point with its Hydra overrides."""
    return [sys.executable, "-m", "projlab.train", *overrides]


def interrupted() -> int | None:
    """The signal number that asked this process to stop, or None."""
    return _interrupt


def _on_signal(signum: int, frame: Any) -> None:
    global _interrupt
    _interrupt = signum
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass


def spawn(cmd: list[str], **popen: Any) -> subprocess.Popen:
    """Start `cmd` in a process group of its own (a stop request reaches it, and what it starts, through
    `forwarding`, not the terminal) that gets SIGTERM when this process dies (Linux), stdin closed."""
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_die_with_parent if _LIBC is not None else None, **popen)


@contextlib.contextmanager
def forwarding(procs: list[subprocess.Popen]) -> Iterator[None]:
    """Inside the block a SIGTERM/SIGINT to this process (after `forward_signals`) goes on to each of `procs`'
    process groups as SIGTERM (a request that came before is the caller's to pass on: `_wait`)."""
    with _running_lock:
        _running.update(procs)
    try:
        yield
    finally:
        with _running_lock:
            _running.difference_update(procs)


def forward_signals() -> None:
    """Install the SIGTERM/SIGINT handlers that pass the stop request to the running arm (main thread only)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the sweep process dies (Linux prctl PR_SET_PDEATHSIG)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def last_line(path: Path, max_bytes: int = 8192) -> str:
    """The last non-empty line of a text file ('' if none): the error line of a crashed arm."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except FileNotFoundError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else ""


def _busy_holder(log_path: Path, start: int) -> str | None:
    """The holder a busy arm named in its log, after byte `start` (the holder's own output may follow it)."""
    with open(log_path, "rb") as f:
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    return next((h for ln in lines if (h := run_lock.Busy.holder_in(ln.strip()))), None)


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def record_crash(run_dir: Path, how: str, log_path: Path) -> dict[str, Any]:
    """Mark an arm failed when its process ended without recording its end (`how` it ended); keep what it
    had written."""
    previous = read_results(run_dir) or {"run_dir": str(run_dir)}
    line = last_line(log_path)
    error = how + (f"; last log line: {line}" if line else "")
    record = {**previous, "status": "failed", "error": error[:500]}
    record.pop("schema", None)
    write_results(run_dir, record)
    return read_results(run_dir) or record


def run_arm(
    overrides: list[str],
    run_dir: str | Path,
    *,
    env: dict[str, str] | None = None,
    on_start: Callable[[int], None] | None = None,
    grace_s: float = GRACE_S,
    rerun: bool = False,
    expected: dict[str, Any] | None = None,
) -> ArmOutcome:
    """Run `projlab.train <overrides>` (which must write to `run_dir`) unless `run_dir` holds a completed
    result (and `rerun` is false) or another process holds it; return its outcome. A completed result is
    skipped only if its stored settings are `expected` (the resolved config asked for), where given.
    Output is appended to `run_dir/train.log`. `on_start(pid)` is called once the process is running (a
    sweep records the pid so it can be found and killed). Thread-safe: a parallel sweep calls it from
    several threads."""
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    done = settled(run_dir, rerun, expected)
    if done is not None:
        return done
    if _interrupt is not None:
        previous = read_results(run_dir)
        return ArmOutcome(run_dir, previous.get("status", "failed") if previous else "failed", previous, None, 0.0)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    cmd = train_command(overrides)
    launched = time.time() - 1.0  # file times may be coarser than the clock
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        start = log.tell()  # where this launch's output begins (another process may write here too)
        proc = spawn(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        with forwarding([proc]):
            if on_start is not None:
                on_start(proc.pid)
            returncode = _wait(proc, grace_s)
    seconds = time.perf_counter() - t0
    if returncode == run_lock.BUSY_EXIT:  # another process took the folder first: nothing was done
        holder = _busy_holder(log_path, start) or run_lock.holder(run_dir) or "another process"
        return ArmOutcome(run_dir, "running", read_results(run_dir), returncode, seconds, True, holder)
    with run_lock.try_hold(run_dir) as held:  # record a crash only while no other process owns the folder
        record = read_results(run_dir)
        status = record.get("status") if record else None
        written_now = record is not None and results_path(run_dir).stat().st_mtime >= launched
        if held and status != "completed" and (not written_now or status not in ("failed", "pruned")):
            record = record_crash(run_dir, _how_it_ended(returncode), log_path)
    status = record["status"] if record else "running"
    return ArmOutcome(run_dir, status, record, returncode, time.perf_counter() - t0)


def _wait(proc: subprocess.Popen, grace_s: float) -> int:
    """Wait for the arm; after a stop request give it `grace_s` to record its end, then kill its group."""
    asked_at: float | None = None
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if _interrupt is not None:
            if asked_at is None:  # the request may have come before the arm was registered
                asked_at = time.monotonic()
                _signal_group(proc, signal.SIGTERM)
            if time.monotonic() - asked_at > grace_s:
                _signal_group(proc, signal.SIGKILL)
