"""The plain PyTorch training step: what Lightning's automatic optimisation does for `MLLMModule`, without
Lightning. The per-arm bench and the framework-overhead bench both time this one function."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from projlab.training.module import MLLMModule


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """What Lightning's `precision` does around the forward: bf16 autocast for "bf16-mixed", nothing for fp32."""
    if precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def set_train_mode(module: MLLMModule) -> None:
    """`model.train()`, frozen units in eval, as Lightning + `MLLMModule.on_train_epoch_start` leave them."""
    module.train()
    for name, unit in module.model.modules_by_name().items():
        if name not in module.stage.trainable:
            unit.eval()


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def plain_step(
    module: MLLMModule,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    params: list[nn.Parameter],
    batch: dict,
    device: torch.device,
    precision: str,
) -> torch.Tensor:
    """One optimiser step on `batch` (already on `device`): forward under the precision's autocast, the loss
    kept on the device as `training_step` keeps it, backward, gradient clipping by norm, AdamW, zero grad, LR
    schedule. Returns the (detached) loss."""
    with autocast(device, precision):
        loss = module.loss(batch)
    value = loss.detach()  # as training_step: kept on the device, read back later
    loss.backward()
    if module.stage.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, module.stage.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return value
