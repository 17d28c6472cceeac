"""How a projector's weights start: `init: reference` (the default) or `init: pytorch`.

- `reference`: as Honeybee builds a model for pre-training. Its model-wide init runs after every module is
  built and overwrites what the modules did themselves: each Linear, Conv2d and Embedding N(0, 0.02) with
  zero bias, each LayerNorm weight 1 and bias 0. Parameters a projector holds directly (the positional
  embedding, learned queries, reference points) keep the values the projector gave them. The reference's
  attention builds q, k and v as Linear layers; `nn.MultiheadAttention` packs them into one matrix, which
  gets the same N(0, 0.02).
- `pytorch`: every module as PyTorch (or the module's own code, e.g. Deformable DETR's offset ring)
  initialised it.

On a small model trained from scratch the start decides how an arm trains, so the scheme is a setting of
the arm, recorded with its config.
"""
from __future__ import annotations

import torch
from torch import nn

from projlab.errors import UserError

INIT_SCHEMES = ("reference", "pytorch")
REFERENCE_STD = 0.02


def check_scheme(scheme: str, projector: str) -> str:
    if scheme not in INIT_SCHEMES:
        raise UserError(f"projector {projector!r}: init={scheme!r} is not allowed; use {' or '.join(INIT_SCHEMES)}")
    return scheme


@torch.no_grad()
def reference_init(module: nn.Module, std: float = REFERENCE_STD) -> None:
    """Honeybee's model-wide init, applied in place to every submodule of `module`."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            m.weight.normal_(0.0, std)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        elif isinstance(m, nn.MultiheadAttention):
            if m.in_proj_weight is not None:
                m.in_proj_weight.normal_(0.0, std)
            else:  # separate q/k/v weights when key and value widths differ
                for w in (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight):
                    w.normal_(0.0, std)
            if m.in_proj_bias is not None:
                m.in_proj_bias.zero_()
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            m.weight.fill_(1.0)
            if m.bias is not None:
                m.bias.zero_()
