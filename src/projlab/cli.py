"""What every command line shares: argparse mistakes as one-line errors, and typed flag values."""
from __future__ import annotations

import argparse

from projlab.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as a one-line UserError (exit 2 through
    `exit_on_user_error`) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{' '.join(message.split())} (see {self.prog} --help)")


def positive_int(text: str) -> int:
    """An argparse `type` for counts: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_ints(text: str) -> list[int]:
    """An argparse `type` for a comma list of counts, e.g. "1,2,3"."""
    return [positive_int(item) for item in text.split(",")]


def jobs_count(text: str) -> int | str:
    """An argparse `type` for --jobs: an integer >= 1, or "auto" (resolved by `sweeps.executor.auto_jobs`)."""
    return "auto" if text == "auto" else positive_int(text)
