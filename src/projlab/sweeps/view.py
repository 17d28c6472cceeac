"""What a person sees while a sweep runs.

On a terminal, a live table (rich): every arm done, running or pending, each running arm's step out of
max_steps with a bar and its ETA, and each arm's end printed above the table as it happens (a failure with
its error line); the table goes when the sweep ends, and the summary follows. Anywhere else (CI, a log
file) one plain line per event of an arm, `[i/n] <arm> ... <event>`: started, at each quarter of its steps,
and its end. A running arm's step is read from its `progress.json` (`projlab.training.progress`) every
`POLL_S`; the rate, and so the ETA, is that process's own (a resumed arm starts late).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from projlab.training.progress import read_progress

POLL_S = 0.5
QUARTERS = 4  # plain lines: one at each quarter of an arm's steps
STATUS_WIDTH = 40  # the table's status cell, one line (a failure's whole line is printed above the table)


@dataclass
class ArmState:
    index: int
    name: str
    run_dir: Path
    status: str = "pending"  # pending | running | what became of it (completed, failed, skipped...)
    text: str = ""  # how it ended, as its line says it
    launched: float = 0.0  # wall-clock time of this launch
    progress: dict[str, Any] | None = None
    quarter: int = 0  # the last quarter a plain line was printed for


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def eta_s(progress: dict[str, Any]) -> float | None:
    """Seconds left at this process's own rate; None before its first step."""
    done = progress["step"] - progress.get("start_step", 0)
    if done <= 0 or not progress.get("elapsed_s"):
        return None
    return max(0, progress["max_steps"] - progress["step"]) * progress["elapsed_s"] / done


def progress_text(progress: dict[str, Any]) -> str:
    """`step 840/2100 (40%), ETA 7 min`."""
    step, total = progress["step"], progress["max_steps"]
    eta = eta_s(progress)
    text = f"step {step}/{total} ({100 * step // max(total, 1)}%)"
    return text + (f", ETA {duration(eta)}" if eta is not None else "")


class SweepView:
    """The arms' states, kept by the sweep's calls (`started`, `finished`) and a thread that reads each
    running arm's progress every `poll_s`; subclasses show them. Thread-safe: parallel arms call it."""

    def __init__(self, name: str, arms: list[tuple[str, Path]], out: TextIO, poll_s: float = POLL_S) -> None:
        self.name, self.out, self.poll_s = name, out, poll_s
        self.arms = [ArmState(i, arm, Path(run_dir)) for i, (arm, run_dir) in enumerate(arms, 1)]
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="sweep-view", daemon=True)

    def __enter__(self) -> SweepView:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.close()

    def started(self, index: int, pid: int | str) -> None:
        """Arm `index` was launched: as process `pid`, or where the text says (a SLURM job)."""
        with self.lock:
            arm = self.arms[index - 1]
            arm.status, arm.launched, arm.progress, arm.quarter = "running", time.time(), None, 0
            self.on_started(arm, pid)

    def finished(self, index: int, status: str, text: str) -> None:
        with self.lock:
            arm = self.arms[index - 1]
            arm.status, arm.text = status, text
            self.on_finished(arm)

    def poll(self) -> None:
        """Read the progress of every running arm (a file from an earlier launch is not this one's)."""
        with self.lock:
            running = [a for a in self.arms if a.status == "running"]
        for arm in running:
            progress = read_progress(arm.run_dir)
            if progress is None or progress.get("updated", 0.0) < arm.launched:
                continue
            with self.lock:
                if arm.status == "running":
                    arm.progress = progress
                    self.on_progress(arm)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def line(self, arm: ArmState, event: str) -> str:
        return f"[{arm.index}/{len(self.arms)}] {arm.name} ... {event}"

    def on_started(self, arm: ArmState, pid: int | str) -> None: ...

    def on_progress(self, arm: ArmState) -> None: ...

    def on_finished(self, arm: ArmState) -> None: ...

    def close(self) -> None: ...


class PlainView(SweepView):
    """One line per event: for logs and CI, where a redrawn table would be noise."""

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def on_started(self, arm: ArmState, pid: int | str) -> None:
        self._print(self.line(arm, f"started ({pid if isinstance(pid, str) else f'pid {pid}'})"))

    def on_progress(self, arm: ArmState) -> None:
        p = arm.progress
        quarter = QUARTERS * p["step"] // max(p["max_steps"], 1)
        if arm.quarter < quarter < QUARTERS:  # the end has its own line
            arm.quarter = quarter
            self._print(self.line(arm, progress_text(p)))

    def on_finished(self, arm: ArmState) -> None:
        self._print(self.line(arm, arm.text))


class LiveView(SweepView):
    """A table redrawn in place on a terminal; each arm's end printed above it, where it stays."""

    STYLES = {"completed": "green", "failed": "red", "pruned": "yellow", "skipped": "yellow"}

    def __init__(self, name: str, arms: list[tuple[str, Path]], out: TextIO, poll_s: float = POLL_S) -> None:
        from rich.console import Console
        from rich.live import Live

        super().__init__(name, arms, out, poll_s)
        self.console = Console(file=out)
        self.live = Live(console=self.console, get_renderable=self.table, refresh_per_second=2, transient=True)
        self.live.start()

    def on_finished(self, arm: ArmState) -> None:
        style = self.STYLES.get(arm.status, "")
        self.live.console.print(self.line(arm, arm.text), style=style, markup=False, highlight=False)

    def table(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self.lock:
            counts: dict[str, int] = {}
            for a in self.arms:
                counts[a.status] = counts.get(a.status, 0) + 1
            title = f"sweep {self.name}: " + ", ".join(f"{n} {s}" for s, n in counts.items())
            table = Table(title=title, title_justify="left", box=None, pad_edge=False)
            for column in ("#", "arm", "status", "progress", "step", "ETA"):
                table.add_column(column, justify="right" if column in ("#", "step", "ETA") else "left", no_wrap=True,
                                 max_width=STATUS_WIDTH if column == "status" else None, overflow="ellipsis")
            shown = self._rows_shown()
            for a in shown:
                p = a.progress if a.status == "running" else None
                eta = eta_s(p) if p else None
                table.add_row(
                    str(a.index), a.name,
                    Text(a.text or a.status, style=self.STYLES.get(a.status, "dim" if a.status == "pending" else "")),
                    ProgressBar(total=p["max_steps"], completed=p["step"], width=24) if p else "",
                    f"{p['step']}/{p['max_steps']}" if p else "setting up" if a.status == "running" else "",
                    duration(eta) if eta is not None else "",
                )
            if len(shown) < len(self.arms):
                table.caption = f"{len(self.arms) - len(shown)} more arm(s) not shown (done or pending)"
            return table

    def _rows_shown(self) -> list[ArmState]:
        """Every arm where the terminal has room; else the running and failed ones first, then the next."""
        room = max(5, self.console.size.height - 6)
        if len(self.arms) <= room:
            return self.arms
        first = [a for a in self.arms if a.status in ("running", "failed")][:room]
        rest = [a for a in self.arms if a not in first and a.status == "pending"][: room - len(first)]
        return sorted(first + rest, key=lambda a: a.index)

    def close(self) -> None:
        self.live.stop()


def open_view(name: str, arms: list[tuple[str, Path]], out: TextIO) -> SweepView:
    """The live table where `out` is a terminal that can redraw (and rich is installed), else plain lines."""
    if out.isatty() and os.environ.get("TERM", "") != "dumb":
        try:
            return LiveView(name, arms, out)
        except ModuleNotFoundError:
            pass
    return PlainView(name, arms, out)
