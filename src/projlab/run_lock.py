"""One process at a time per run folder: an advisory lock on `<run>/.lock`.

`projlab.train` holds it (rank 0) from before it reads the folder until it has written its end; a sweep's
runner asks `holder()` before it launches an arm and skips an arm someone holds, naming the holder. The lock
is the kernel's (`flock`), so a process that dies releases it however it dies; the file keeps the holder's
line (pid, host, start) while it is held and is emptied on release, so a line found on taking the lock is
that of a dead holder, taken over. The file is never removed: removing a lock file races with its takers.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".lock"
BUSY_EXIT = 75  # projlab.train's exit code when another process holds its run folder (EX_TEMPFAIL)
PATIENCE_S = 1.0  # a taker retries this long: `holder()` probes take the lock for an instant


class Busy(Exception):
    """The run folder is held by another live process; `holder` says which."""

    def __init__(self, run_dir: Path, holder: str) -> None:
        super().__init__(f"{run_dir} is in use by {holder}; not started")
        self.run_dir, self.holder = run_dir, holder

    @staticmethod
    def holder_in(line: str) -> str | None:
        """The holder named in a Busy line (the last line a busy `projlab.train` leaves in its log)."""
        head, sep, tail = line.partition(" is in use by ")
        return tail.removesuffix("; not started") if sep and tail.endswith("; not started") else None


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"


def _read(fd: int) -> str:
    return os.pread(fd, 512, 0).decode(errors="replace").strip()


@contextlib.contextmanager
def hold(run_dir: str | Path) -> Iterator[str | None]:
    """Hold the folder's lock for the block (creating the folder); raise Busy if a live process holds it.
    Yields the line of a dead holder whose lock this takes over, else None."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Busy(run_dir, _read(fd) or "another process") from None
                time.sleep(0.05)
        stale = _read(fd) or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_me() + "\n").encode(), 0)
        try:
            yield stale
        finally:
            os.ftruncate(fd, 0)  # released cleanly: no line left to take for a dead holder's
    finally:
        os.close(fd)  # releases the lock


def holder(run_dir: str | Path) -> str | None:
    """Who holds the folder's lock now (their line), or None where nobody does. Creates nothing."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or "another process"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_hold(run_dir: str | Path) -> Iterator[bool]:
    """Hold the lock for the block if nobody else does; yields whether it is held (never raises Busy)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(hold(run_dir))
        except Busy:
            yield False
            return
        yield True
