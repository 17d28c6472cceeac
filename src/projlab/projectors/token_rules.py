"""How M follows from the request and the grid, for projectors that do not learn their queries (those keep the
base class's rule: any M >= 1). A projector takes its rule by subclassing one of these; the rule is then a
fact of its class that sweeps, tables and the --table read, never a string compared elsewhere.

- `SquareGrid`: M = s * s, s <= each grid side (pooling to a square grid).
- `Blocks`: M = N / r^2, the grid cut into r x r blocks (r dividing both sides); unset: r = 2.
- `PerPatch`: M = N, every patch kept; a sweep's token list leaves it alone.
- `NoTokens`: M = 0 (the blind control).
"""
from __future__ import annotations

import math
from typing import Any

from projlab.errors import UserError
from projlab.projectors.base import DEFAULT_BLOCK, Projector, block_sides


class SquareGrid(Projector):
    """Grid-pooling projectors: a perfect square M = s*s with s <= each grid side."""

    token_rule = "square"

    @classmethod
    def resolve_num_visual_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        side = int(math.isqrt(int(requested))) if requested is not None and int(requested) > 0 else 0
        rows, cols = grid
        if requested is None or int(requested) < 1 or side * side != int(requested) or side > min(rows, cols):
            squares = ", ".join(str(s * s) for s in range(1, min(rows, cols) + 1))
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed on a "
                f"{rows}x{cols} patch grid; allowed: a perfect square up to {min(rows, cols) ** 2} ({squares})"
            )
        return int(requested)


class Blocks(Projector):
    """Projectors that merge each r x r block of the grid into one token: M = (rows / r) * (cols / r) for an
    integer r dividing both sides; unset: r = 2 (InternVL's and TokenPacker's default)."""

    token_rule = "blocks"

    @classmethod
    def resolve_num_visual_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        rows, cols = grid
        sides = block_sides(grid)
        by_side = {r: m for m, r in sides.items()}
        m = by_side.get(DEFAULT_BLOCK) if requested is None else int(requested)
        if m not in sides:
            shown = "unset" if requested is None else str(requested)
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={shown} is not allowed on a {rows}x{cols} "
                f"patch grid; allowed: N / r^2 for r dividing both sides ({', '.join(map(str, sides))})"
            )
        return m

    @classmethod
    def table_request(cls, tokens: int, grid: tuple[int, int]) -> dict[str, Any]:
        return {}  # the --table shows the default r = 2 (M = N / 4), as InternVL and TokenPacker build it


class PerPatch(Projector):
    """Per-patch projectors: M = N, the number of patches; any other request is an error."""

    token_rule = "all_patches"
    takes_token_request = False

    @classmethod
    def resolve_num_visual_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        n = grid[0] * grid[1]
        if requested is not None and int(requested) != n:
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed; it keeps "
                f"every patch, so M = N = {n} on a {grid[0]}x{grid[1]} grid (leave it unset or give {n})"
            )
        return n


class NoTokens(Projector):
    """Projectors that emit no visual tokens: M = 0."""

    token_rule = "none"
    takes_token_request = False

    @classmethod
    def resolve_num_visual_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        if requested not in (None, 0):
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed; "
                "it emits no visual tokens (leave it unset or give 0)"
            )
        return 0
