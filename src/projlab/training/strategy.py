"""Distribution is configuration: `trainer.strategy` -> a Lightning strategy.

- `auto`: Lightning's choice (one process for `devices: 1`).
- `ddp`: one replica per process; gloo on CPU, nccl on GPUs.
- `fsdp`: FSDP2 through Lightning's `ModelParallelStrategy`: `fully_shard` on every unit the model offers
  (`MLLM.sharding_units`: vision-encoder layers, LLM decoder layers), then the projector, then the root.
  The strategy carries the settings; `MLLMModule.configure_model` calls `configure_sharding`, which applies
  them once the device mesh exists.

The model knows nothing of this: it only lists its sharding units.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy
from omegaconf import DictConfig
from torch import nn

from projlab.errors import UserError
from projlab.models.mllm import MLLM

if TYPE_CHECKING:
    import lightning as L
    from torch.distributed.device_mesh import DeviceMesh

STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")
MIXED_PRECISION = {"bf16": torch.bfloat16}


class FSDP2Strategy(ModelParallelStrategy):
    """`ModelParallelStrategy` with data parallelism only, and the FSDP2 settings `configure_sharding` reads."""

    def __init__(
        self,
        data_parallel_size: int,
        mixed_precision: str | None = None,
        activation_checkpointing: bool = False,
        save_distributed_checkpoint: bool = False,
    ) -> None:
        super().__init__(
            data_parallel_size=data_parallel_size, tensor_parallel_size=1,
            save_distributed_checkpoint=save_distributed_checkpoint,
        )
        self.mixed_precision = mixed_precision
        self.activation_checkpointing = activation_checkpointing

    def load_checkpoint(self, checkpoint_path, weights_only: bool | None = None) -> dict:
        """Resume from a folder of shards that lacks the frozen weights (`MLLMModule.on_save_checkpoint`
        drops them): Lightning's own loader asks for every key; this one keeps what the model already has."""
        path = Path(self.broadcast(checkpoint_path))
        if not path.is_dir():
            return super().load_checkpoint(path, weights_only)
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint import state_dict as sd

        state = {"state_dict": sd.get_model_state_dict(self.model)}
        dcp.load(state, checkpoint_id=path, planner=dcp.DefaultLoadPlanner(allow_partial_load=True))
        sd.set_model_state_dict(self.model, state["state_dict"])
        for i, optimizer in enumerate(self.optimizers):
            opt_state = {f"optimizer_{i}": sd.get_optimizer_state_dict(self.model, optimizer)}
            dcp.load(opt_state, checkpoint_id=path, planner=dcp.DefaultLoadPlanner(allow_partial_load=True))
            sd.set_optimizer_state_dict(self.model, optimizer, opt_state[f"optimizer_{i}"])
        return torch.load(path / "meta.pt", weights_only=weights_only)


@torch.no_grad()
def broadcast_from_rank0(model: nn.Module, mesh: DeviceMesh) -> None:
    """Give every rank rank 0's weights and buffers, as DDP does at wrap time.

    `fully_shard` keeps each rank's slice of that rank's own copy, so ranks that initialised differently
    (a seed consumed elsewhere on one rank) would silently train a mix no single process could build.
    One tensor at a time through the mesh's device, so peak extra memory is the largest tensor.
    """
    import torch.distributed as dist

    group = mesh.get_group()
    device = torch.device("cuda", torch.cuda.current_device()) if mesh.device_type == "cuda" else torch.device("cpu")
    src = dist.get_global_rank(group, 0)
    for t in [*model.parameters(), *model.buffers()]:
        buf = t.detach().to(device)
        dist.broadcast(buf, src=src, group=group)
        t.copy_(buf)


def apply_fsdp2(
    module: L.LightningModule, mesh: DeviceMesh, mixed_precision: str | None = None,
    activation_checkpointing: bool = False,
) -> None:
    """Shard `module.model` (an MLLM) in place over `mesh`; a second call is a no-op.

    Each unit gets its own `fully_shard` so only one block is gathered at a time, the projector too; the root
    holds what is left (embeddings, head). `encode_images` runs the root's hooks as `forward` does: a step
    encodes its images before the LLM's forward, and the root's hooks must run first.
    Parameter names do not change (FSDP2 and composable checkpointing add no wrapper), so name-based logic
    (the freeze policy, dropping frozen weights from checkpoints) works as in one process. Frozen and
    trainable parameters may share a unit (FSDP2 shards each parameter on its own).
    """
    from torch.distributed._composable import checkpoint
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    model: MLLM = module.model
    if isinstance(model, FSDPModule):
        return
    broadcast_from_rank0(model, mesh)
    kwargs: dict = {"mesh": mesh}
    if mixed_precision:
        dtype = MIXED_PRECISION[mixed_precision]
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    if activation_checkpointing:
        model.llm.model.config.use_cache = False  # a KV cache filled twice (forward + recompute) breaks shapes
    for unit in model.sharding_units():
        if activation_checkpointing:
            checkpoint(unit)  # recompute the block's activations in backward; hooks only, no rename
        fully_shard(unit, **kwargs)
    fully_shard(model.projector, **kwargs)
    fully_shard(model, **kwargs)
    register_fsdp_forward_method(model, "encode_images")


def configure_sharding(module: L.LightningModule) -> None:
    """What `MLLMModule.configure_model` runs: shard when the trainer's strategy is FSDP2, else nothing."""
    if module.device_mesh is None:
        return
    strategy = module.trainer.strategy
    if isinstance(strategy, FSDP2Strategy):
        apply_fsdp2(module, module.device_mesh["data_parallel"], strategy.mixed_precision,
                    strategy.activation_checkpointing)


def resolve_devices(trainer_cfg: DictConfig) -> int:
    """Processes per node for `trainer.devices` (an int, "auto"/-1, "0,1" or a list of ids)."""
    devices = trainer_cfg.devices
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if isinstance(devices, str) and "," in devices:
        return len([d for d in devices.split(",") if d.strip()])
    if devices in ("auto", -1, "-1"):
        gpu = trainer_cfg.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        return torch.cuda.device_count() if gpu else 1
    if hasattr(devices, "__len__") and not isinstance(devices, str):
        return len(devices)
    raise UserError(f"trainer.devices={devices!r} is not allowed; use a count, auto, or a list of device ids")


def build_strategy(trainer_cfg: DictConfig, model: MLLM):
    """Return (strategy for L.Trainer, world size)."""
    name = trainer_cfg.strategy
    if name not in STRATEGIES:
        raise UserError(f"unknown trainer.strategy {name!r}; known: {', '.join(STRATEGIES)}")
    world = resolve_devices(trainer_cfg) * trainer_cfg.num_nodes
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=bool(trainer_cfg.get("find_unused_parameters", False))), world
    if name != "fsdp":
        return name, world

    mixed = trainer_cfg.get("mixed_precision")
    if mixed is not None and mixed not in MIXED_PRECISION:
        raise UserError(f"trainer.mixed_precision={mixed!r} is not allowed; use bf16 or null")
    if not model.sharding_units():
        raise UserError("trainer=fsdp: the model offers no sharding units")
    strategy = FSDP2Strategy(
        data_parallel_size=world,
        mixed_precision=mixed,
        activation_checkpointing=bool(trainer_cfg.get("activation_checkpointing", False)),
        save_distributed_checkpoint=bool(trainer_cfg.get("distributed_checkpoint", False)),
    )
    return strategy, world
