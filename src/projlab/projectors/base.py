"""What every projector shares: its output token count, the grid it reads, its init scheme, and the layers
several projectors build (positional embedding, float32 LayerNorm, readout MLP, head counts)."""
from __future__ import annotations

import contextlib
import math
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from projlab.errors import UserError
from projlab.projectors.init import check_scheme, reference_init


class Projector(nn.Module):
    """Maps patch features (B, N, C_vision) on a fixed (rows, cols) grid to visual tokens (B, M, C_llm).

    `num_visual_tokens` (M) is derived once, at build time, by `resolve_num_visual_tokens`; nothing else
    recomputes it. `token_set` lists every M the projector serves: (M,) for all but an elastic projector,
    which serves several with one set of weights; `emitting(m)` makes it emit another M of its set for a while
    (`num_visual_tokens` always says the count it emits now).
    """

    registry_name: ClassVar[str]
    config_cls: ClassVar[type]
    # How M follows from the request: "queries" (any M >= 1), "square" (s*s, s <= grid side),
    # "blocks" (M = N / r^2, the grid cut into r x r blocks; unset: r = 2), "all_patches" (M = N),
    # "none" (M = 0), "set" (elastic: each M of the config's `token_set` a square, M one of them; a sweep's
    # token list leaves it alone, as it does M = N).
    token_rule: ClassVar[str] = "queries"
    source: ClassVar[str] = ""  # the paper or codebase whose design it follows (the --table's last column)

    def __init__(self, config: Any, vision_dim: int, llm_dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.config = config
        self.vision_dim = vision_dim
        self.llm_dim = llm_dim
        self.grid = grid
        self.num_patches = grid[0] * grid[1]
        self.num_visual_tokens = self.resolve_num_visual_tokens(
            getattr(config, "num_visual_tokens", None), grid
        )
        self.built_tokens = self.num_visual_tokens  # M outside `emitting`
        self.token_set: tuple[int, ...] = self.served_tokens(config, grid)

    @contextlib.contextmanager
    def emitting(self, m: int) -> Iterator[None]:
        """Emit `m` visual tokens (one of `token_set`) inside the block, the built M again after it."""
        if m not in self.token_set:
            raise ValueError(f"{self.registry_name}: M = {m} is not one it serves ({list(self.token_set)})")
        previous, self.num_visual_tokens = self.num_visual_tokens, int(m)
        try:
            yield
        finally:
            self.num_visual_tokens = previous

    # ---- token count -------------------------------------------------------------------------
    @classmethod
    def served_tokens(cls, config: Any, grid: tuple[int, int]) -> tuple[int, ...]:
        """Every M a projector built from `config` on `grid` can emit, ascending; a UserError where one cannot
        be made. One M, its `num_visual_tokens`, for all but elastic projectors (which override this)."""
        return (cls.resolve_num_visual_tokens(getattr(config, "num_visual_tokens", None), grid),)

    @classmethod
    def resolve_num_visual_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        """The number of visual tokens M this projector emits for `requested` on `grid`, or a UserError."""
        rule = {
            "queries": cls._any_positive,
            "square": cls._square_tokens,
            "blocks": cls._block_tokens,
            "all_patches": cls._all_patches,
            "none": cls._no_tokens,
            "set": cls._square_tokens,  # each M of the set, and M itself, a square (`served_tokens`: of the set)
        }[cls.token_rule]
        return rule(requested, grid)

    @classmethod
    def _any_positive(cls, requested: int | None, grid: tuple[int, int]) -> int:
        """Rule for learned-query projectors: any positive M."""
        if requested is None or int(requested) < 1:
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed; "
                "give a positive integer"
            )
        return int(requested)

    @classmethod
    def _square_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        """Rule for grid-pooling projectors: a perfect square M = s*s with s <= each grid side."""
        side = int(math.isqrt(int(requested))) if requested is not None and int(requested) > 0 else 0
        rows, cols = grid
        if requested is None or int(requested) < 1 or side * side != int(requested) or side > min(rows, cols):
            squares = ", ".join(str(s * s) for s in range(1, min(rows, cols) + 1))
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed on a "
                f"{rows}x{cols} patch grid; allowed: a perfect square up to {min(rows, cols) ** 2} ({squares})"
            )
        return int(requested)

    @classmethod
    def _block_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        """Rule for projectors that merge each r x r block of the grid into one token: M = (rows / r) *
        (cols / r) for an integer r dividing both sides; unset: r = 2 (InternVL's and TokenPacker's default)."""
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
    def _all_patches(cls, requested: int | None, grid: tuple[int, int]) -> int:
        """Rule for per-patch projectors: M = N, the number of patches; any other request is an error."""
        n = grid[0] * grid[1]
        if requested is not None and int(requested) != n:
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed; it keeps "
                f"every patch, so M = N = {n} on a {grid[0]}x{grid[1]} grid (leave it unset or give {n})"
            )
        return n

    @classmethod
    def _no_tokens(cls, requested: int | None, grid: tuple[int, int]) -> int:
        if requested not in (None, 0):
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed; "
                "it emits no visual tokens (leave it unset or give 0)"
            )
        return 0

    # ---- settings and init -------------------------------------------------------------------
    @classmethod
    def check_config(cls, config: Any) -> None:
        """Reject settings no module can be built from (called by `projector_config`, before any build)."""
        if hasattr(config, "init"):
            check_scheme(config.init, cls.registry_name)
        if hasattr(config, "activation"):
            check_activation(config.activation, cls.registry_name)

    def initialise(self) -> None:
        """Apply the config's init scheme once every module exists (`build_projector` calls it)."""
        if getattr(self.config, "init", "pytorch") == "reference":
            reference_init(self)

    # ---- shared parts ------------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_patches or x.shape[2] != self.vision_dim:
            raise ValueError(
                f"{self.registry_name}: expected features (B, {self.num_patches}, {self.vision_dim}), "
                f"got {tuple(x.shape)}"
            )


DEFAULT_BLOCK = 2  # r when a "blocks" projector is given no M


def block_sides(grid: tuple[int, int]) -> dict[int, int]:
    """M -> r for every r x r block size that tiles `grid` (r dividing both sides), largest M first."""
    rows, cols = grid
    return {(rows // r) * (cols // r): r for r in range(1, min(rows, cols) + 1) if rows % r == 0 and cols % r == 0}


class PositionalEmbedding(nn.Module):
    """Learnable (1, N, C) embedding added to the patch features (Honeybee's C/D-Abstractor)."""

    def __init__(self, num_patches: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, num_patches, dim))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight  # out of place: never modify the caller's features


def attention_heads(dim: int, num_heads: int | None, head_dim: int) -> int:
    """Heads for width `dim`: as configured, or derived so each head keeps the paper's width (`head_dim`),
    so that a narrow preset does not end up with 4-wide heads."""
    heads = num_heads or max(1, dim // head_dim)
    if dim % heads:
        raise UserError(f"num_heads={heads} does not divide the feature width {dim}; give a divisor of {dim}")
    return heads


ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "gelu": nn.GELU}


def build_mlp(depth: int, in_dim: int, out_dim: int, activation: str = "silu") -> nn.Sequential:
    """Honeybee's readout: Linear(in, out), then (activation, Linear(out, out)) x (depth - 1)."""
    layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
    for _ in range(1, depth):
        layers += [ACTIVATIONS[activation](), nn.Linear(out_dim, out_dim)]
    return nn.Sequential(*layers)


def check_activation(activation: str, projector: str) -> None:
    if activation not in ACTIVATIONS:
        raise UserError(
            f"projector {projector!r}: activation={activation!r} is not allowed; use {' or '.join(ACTIVATIONS)}"
        )


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the autocast or parameter dtype, cast back to the input's
    dtype (the reference's `LayerNormFp32`): under bf16 its statistics keep full precision."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the meta device (counting on a projector that is never materialised) has no autocast to leave
        off = torch.autocast(x.device.type, enabled=False) if x.device.type != "meta" else contextlib.nullcontext()
        with off:
            weight = self.weight.float() if self.weight is not None else None
            bias = self.bias.float() if self.bias is not None else None
            out = nn.functional.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)
