"""A sweep's default folder name, derived from what it sweeps: the same command always gets the same name
(so running it again resumes), two different grids get different ones (so `make figures` never mixes them).

    sweep_name([("projector", ["c_abstractor"]), ("projector.num_visual_tokens", [64, 144, 256])])
    -> "c_abstractor-m64_144_256"

Axes are (override key, values). The paper's axes have the arm names' prefixes (M, resolution, seed); any
other key is named by its last component ("stage.lr" -> "lr_0.001_0.003"). Values are sorted (numbers as
numbers), so a list given in another order, or shuffled by Hydra's `shuffle()`, is the same sweep. A long
list keeps its first two values and its count, and the name then ends in a short hash of the whole, so it
stays unique.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

PREFIXES = {"projector": "", "projector.num_visual_tokens": "m", "vision.resolution": "r", "seed": "s"}
MAX_PART = 32  # characters of one axis before its list is shortened
MAX_NAME = 96  # characters of the whole name before it is cut (plus its hash)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(value: Any) -> str:
    return _UNSAFE.sub("_", str(value)).strip("_.") or "_"


def _order(value: str) -> tuple[int, float, str]:
    try:
        return 0, float(value), value
    except ValueError:
        return 1, 0.0, value


def _prefix(key: str) -> str:
    key = key.lstrip("+~")
    return PREFIXES.get(key, f"{_safe(key.rsplit('.', 1)[-1])}_")


def sweep_name(axes: Sequence[tuple[str, Sequence[Any]]]) -> str:
    """The folder name of a sweep over `axes`, filesystem-safe and starting with a letter (a Hydra value
    of digits alone would be read as a number)."""
    axes = [(key, sorted({_safe(v) for v in values}, key=_order)) for key, values in axes]
    parts, shortened = [], False
    for key, values in axes:
        part = _prefix(key) + "_".join(values)
        if len(part) > MAX_PART and len(values) > 2:
            part, shortened = f"{_prefix(key)}{values[0]}_{values[1]}_and{len(values) - 2}more", True
        parts.append(part)
    full = "-".join(f"{key}={','.join(map(str, values))}" for key, values in axes)
    name = "-".join(parts) or "sweep"
    if len(name) > MAX_NAME:
        name, shortened = name[:MAX_NAME].rstrip("-_."), True
    if shortened:
        name += "-" + hashlib.sha1(full.encode()).hexdigest()[:6]
    return name if name[0].isalpha() else f"sweep-{name}"
