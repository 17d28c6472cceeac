"""The projector base class: what a projector is (its output token count, the grid it reads, its init scheme,
and the facts about it the rest of the project reads from the class: its token rule, whether it is a control,
its place and colour in tables and figures), and the layers several projectors build (positional embedding,
float32 LayerNorm, readout MLP, head counts). Each projector wires those layers itself; the token rules other
than learned queries are small base classes in `projlab.projectors.token_rules`."""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from projlab.errors import UserError
from projlab.projectors.init import check_scheme, reference_init


class Projector(nn.Module):
    """Maps patch features (B, N, C_vision) on a fixed (rows, cols) grid to visual tokens (B, M, C_llm).

    `num_visual_tokens` (M) is derived once, at build time, by `resolve_num_visual_tokens`, the class's token
    rule; nothing else recomputes it. `token_set` lists every M the projector serves: (M,) for all but an
    elastic projector, which serves several with one set of weights; `emitting(m)` makes it emit another M of
    its set for a while (`num_visual_tokens` always says the count it emits now).

    The class attributes are the only record of these facts: sweeps, tables, figures and the --table read
    them here, so adding a projector is its own file (and its yaml).
    """

    registry_name: ClassVar[str]
    config_cls: ClassVar[type]
    # The rule's name, shown in tables and labels; the rule itself is `resolve_num_visual_tokens`. This base
    # class's rule: learned queries, any M >= 1.
    token_rule: ClassVar[str] = "queries"
    takes_token_request: ClassVar[bool] = True  # a sweep's token list sets its M (else it runs once per grid)
    is_control: ClassVar[bool] = False  # a control of the instrument: tables list it after the projectors
    table_rank: ClassVar[int] = 1000  # place in tables and figures (ties: by name); controls come last
    colour: ClassVar[str | None] = None  # in every figure; None: one of the spare colours (`analysis.figures`)
    source: ClassVar[str] = ""  # the paper or codebase whose design it follows (the --table's last column)
    paper_arm: ClassVar[bool] = False  # one of the arms of Honeybee's projector study (the bench times it at size)
    # The registered projector whose modules it runs, adding none (its cost is that one's: the bench leaves it out)
    network_of: ClassVar[str | None] = None

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
        """The number of visual tokens M this projector emits for `requested` on `grid`, or a UserError.
        Learned queries: any positive M (a token rule class overrides this)."""
        if requested is None or int(requested) < 1:
            raise UserError(
                f"projector {cls.registry_name!r}: num_visual_tokens={requested} is not allowed; "
                "give a positive integer"
            )
        return int(requested)

    @classmethod
    def table_request(cls, tokens: int, grid: tuple[int, int]) -> dict[str, Any]:
        """The knobs `python -m projlab.projectors --table --tokens M` builds it with on `grid`: M where it
        takes a token request, else its own default."""
        return {"num_visual_tokens": tokens} if cls.takes_token_request else {}

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
