"""The generic value checks a rule is made of: each constructor gives a `Check`, a function from a value to
None where it is allowed, else what is wrong with it (the phrase after "key=value: ", e.g. "must be an integer
>= 1"). They know nothing of a run's configuration: `projlab.schema` says which key gets which check.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

Check = Callable[[Any], "str | None"]  # a value -> None where it is allowed, else what is wrong


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _or_null(text: str, null: bool) -> str:
    return f"{text} or null" if null else text


def integer(low: int | None = None, high: int | None = None, *, null: bool = False, why: str = "") -> Check:
    bounds = f" in {low}..{high}" if low is not None and high is not None else f" >= {low}" if low is not None else ""
    allowed = f"must be {_or_null('an integer' + bounds, null)}" + (f" ({why})" if why else "")

    def check(v: Any) -> str | None:
        if v is None and null:
            return None
        ok = _is_int(v) and (low is None or v >= low) and (high is None or v <= high)
        return None if ok else allowed

    return check


def number(low: float | None = None, *, above: float | None = None, below: float | None = None,
           null: bool = False) -> Check:
    bounds = " ".join(b for b in (f">= {low}" if low is not None else "", f"> {above}" if above is not None else "",
                                  f"< {below}" if below is not None else "") if b)
    allowed = f"must be {_or_null(('a number ' + bounds).strip(), null)}"

    def check(v: Any) -> str | None:
        if v is None and null:
            return None
        ok = _is_number(v) and (low is None or v >= low) and (above is None or v > above) and (
            below is None or v < below)
        return None if ok else allowed

    return check


def flag() -> Check:
    return lambda v: None if isinstance(v, bool) else "must be true or false"


def choice(options: tuple | Callable[[], tuple], *, null: bool = False) -> Check:
    """One of `options` (or a function giving them, called only when a value is checked: some lists belong
    to modules that are slow to import)."""

    def check(v: Any) -> str | None:
        if v is None and null:
            return None
        known = tuple(options() if callable(options) else options)
        if v in known and not isinstance(v, bool):
            return None
        names = list(dict.fromkeys(map(str, known)))  # Lightning's precisions hold both 32 and "32"
        return f"must be {'one of ' if len(names) > 1 else ''}{', '.join(names)}{' or null' if null else ''}"

    return check


def text(*, null: bool = False) -> Check:
    def check(v: Any) -> str | None:
        return None if (v is None and null) or (isinstance(v, str) and v.strip()) else \
            f"must be {_or_null('a non-empty text', null)}"

    return check


def folder_name(*, null: bool = False) -> Check:
    """A plain name for a folder under the runs root (digits alone must be quoted, or they are a number)."""

    def check(v: Any) -> str | None:
        if v is None and null:
            return None
        if isinstance(v, str) and v.strip() and "/" not in v and not v.startswith("."):
            return None
        quote = " (quote digits: '2024')" if _is_number(v) else ""
        return f"must be {_or_null('a plain folder name (no /, not starting with .)', null)}{quote}"

    return check


def mapping() -> Check:
    return lambda v: None if isinstance(v, dict) else "must be a mapping of keys to values"


def pair_in_unit_interval() -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v)
        return None if ok else "must be two numbers in [0, 1), e.g. [0.9, 0.98]"

    return check


def devices() -> Check:
    """What `training.strategy.resolve_devices` reads: a count, auto/-1, "0,1" or a list of device ids."""

    def check(v: Any) -> str | None:
        if (_is_int(v) and (v >= 1 or v == -1)) or v == "auto":
            return None
        if isinstance(v, str) and v.strip() and all(p.strip().isdigit() for p in v.split(",")):
            return None
        if isinstance(v, list) and v and all(_is_int(d) and d >= 0 for d in v):
            return None
        return "must be a count >= 1, auto, -1, or a list of device ids"

    return check


def writable_folder(env: str) -> Check:
    """A folder this process may write in, or one it may create: the first part of the path that exists must
    be a writable folder. Nothing is created here. `env` names the variable that sets it."""

    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not v.strip():
            return f"must be a folder path ({env}=<folder>)"
        probe = Path(v)
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            return f"'{probe}' is a file, not a folder; give a writable folder ({env}=<folder>)"
        if not os.access(probe, os.W_OK | os.X_OK):
            return f"'{probe}' is not writable; give a writable folder ({env}=<folder>)"
        return None

    return check


def existing(kind: str) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, str) or not v.strip():
            return f"must be the path of a {kind}"
        path = Path(v)
        ok = path.is_file() if kind == "file" else path.is_dir()
        if ok and os.access(path, os.R_OK):
            return None
        return f"'{path}' {'cannot be read' if ok else 'does not exist' if not path.exists() else 'is not a ' + kind}"

    return check
