"""The one writer of a Markdown table's grid, through which every table of the project is printed (the
analysis tables, the bench, the projector listing, calibration): header, alignment row, one row per record.
"""
from __future__ import annotations

from typing import Iterable, Sequence

_RULE = {"l": "---", "r": "---:"}


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """The lines of a pipe table. `align` holds one letter per column, "l" (left) or "r" (right: numbers);
    columns it does not reach are left-aligned. A "|" inside a cell is escaped, so it cannot split the cell."""
    if set(align) - set(_RULE):
        raise ValueError(f"align={align!r}: one letter per column, l or r")
    rule = [_RULE[a] for a in align.ljust(len(header), "l")]
    return (["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
            + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows])
