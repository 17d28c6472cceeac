"""An elastic C-Abstractor: one set of weights that serves several token counts M, so one training run
yields the whole accuracy-vs-tokens curve (Matryoshka-style, as M3 / Matryoshka Multimodal Models,
arXiv 2405.17430, train nested token counts in one model).

The network is Honeybee's C-Abstractor unchanged (RegNet stage, adaptive average pooling, RegNet stage,
readout); only the pooling grid varies. Every training step pools to one (sqrt M, sqrt M) grid, M drawn from
`token_set` (`projlab.training.token_draw`: the same M for every sample of the batch, so the batch stays
rectangular, and the LLM's sequence holds that many image tokens); evaluation scores it at every M of the
set (`emitting`). Outside a drawn step it emits `num_visual_tokens`, one of the set (default: the largest),
the M its validation and headline accuracy use.

A registered projector of its own rather than a knob of `c_abstractor`: results, folder names and tables key
an arm by registry name and M, so a knob would file an elastic run under the same folder and average it with
the separately trained c_abstractor arms at M = 144; and its token rule differs (a sweep's token list leaves
it alone). It shares every weight name with `c_abstractor`, so a c_abstractor checkpoint loads into it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from projlab.errors import UserError
from projlab.projectors.c_abstractor import CAbstractor, CAbstractorConfig
from projlab.projectors.registry import register


@dataclass
class ElasticCAbstractorConfig(CAbstractorConfig):
    num_visual_tokens: int = 144  # the M outside a drawn step (validation, headline accuracy): one of token_set
    token_set: list[int] = field(default_factory=lambda: [16, 64, 144])  # the Ms a step draws from, each a square


@register("c_abstractor_elastic", ElasticCAbstractorConfig)
class ElasticCAbstractor(CAbstractor):
    token_rule = "set"  # each M of the config's `token_set`, a square
    takes_token_request = False  # its M comes from its token set, not a sweep's token list
    paper_arm = False
    network_of = "c_abstractor"  # at each M, c_abstractor's modules pooled to that M
    table_rank = 120
    colour = "#7D3C98"
    source = "Honeybee's C-Abstractor; token counts nested as Matryoshka Multimodal Models (arXiv 2405.17430)"

    @classmethod
    def served_tokens(cls, config: Any, grid: tuple[int, int]) -> tuple[int, ...]:
        """The sorted token set, each M a square the grid allows; the built M must be one of them."""
        given = list(config.token_set or [])
        rows, cols = grid
        squares = [s * s for s in range(1, min(rows, cols) + 1)]
        bad = [m for m in given if isinstance(m, bool) or m not in squares]
        if not given or bad or len(set(given)) != len(given):
            why = f"{bad[0]!r} is no perfect square up to {squares[-1]}" if bad else "give distinct values"
            raise UserError(f"projector {cls.registry_name!r}: token_set={given} is not allowed on a {rows}x{cols} "
                            f"patch grid ({why}); allowed: distinct values of {', '.join(map(str, squares))}")
        served = tuple(sorted(given))
        if config.num_visual_tokens not in served:
            raise UserError(f"projector {cls.registry_name!r}: num_visual_tokens={config.num_visual_tokens} is "
                            f"not one of token_set {list(served)}; give one of them")
        return served

    @classmethod
    def table_request(cls, tokens: int, grid: tuple[int, int]) -> dict[str, Any]:
        """Its default token set, the Ms the grid allows (the --table's FLOPs: at the largest)."""
        fits = [m for m in cls.config_cls().token_set if math.isqrt(m) <= min(grid)] or [1]
        return {"token_set": fits, "num_visual_tokens": max(fits)}
