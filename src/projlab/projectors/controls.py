"""Controls that calibrate the instrument. They are projectors like any other, so a sweep runs them
through the same code as every arm.

- `blind`: no visual tokens at all. What a model scores without the image: chance, if the benchmark is
  balanced.
- `shuffle`: every patch kept (M = N) through the MLP projector, but the patch tokens are put in a fresh
  random order for every image on every call, so the LLM cannot tell where a patch was. What survives is
  what a bag of patches carries (colours, how many objects); what goes is where they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from projlab.projectors.mlp import MLPConfig, MLPProjector
from projlab.projectors.registry import register
from projlab.projectors.token_rules import NoTokens


@dataclass
class BlindConfig:
    num_visual_tokens: int | None = None  # must be 0 or unset


@register("blind", BlindConfig)
class Blind(NoTokens):
    is_control = True
    table_rank = 10
    colour = "#949494"
    source = "control: no visual tokens"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, 0, C_llm)"""
        self._check_input(x)
        return x.new_zeros(x.shape[0], 0, self.llm_dim)


@register("shuffle", MLPConfig)
class ShuffledPatches(MLPProjector):
    is_control = True
    paper_arm = False
    network_of = "mlp"  # its modules, on patches in another order
    table_rank = 20
    colour = "#56B4E9"
    source = "control: the MLP on patches in a fresh random order"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, N, C_llm), patches in a random order per image."""
        self._check_input(x)
        order = torch.rand(x.shape[0], x.shape[1], device=x.device).argsort(dim=1)
        x = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
        return self.net(x)
