"""User-facing errors: one line, non-zero exit, no traceback."""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake in the user's input (config, path, data). Printed as one line."""


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Wrap a command-line entry point: a UserError becomes `error: <message>` and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
