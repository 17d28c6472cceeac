"""Config -> objects: the one module that knows how the parts fit.

The tower and the LLM, the MLLM, the data sources, the text processor, the LightningModule and the
DataModule, each built from a composed run config, here only. `train.py`, the evaluation commands, the bench
and the analysis build through it; nothing here knows of fitting, sweeps or results.

    model = build.model(cfg)              # backbones as cfg sets them, then the projector (seeded)
    module = build.module(cfg, model)     # the stage's freeze policy and recipe
    dm = build.datamodule(cfg, model)     # keyword arguments, the run's sources, processor and cache rule
    run = build.trained("runs/<sweep>/<arm>")   # a saved run, its checkpoint loaded, ready to evaluate
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from lightning.pytorch.strategies import Strategy
from omegaconf import DictConfig, OmegaConf

from projlab.data.prompt import TextProcessor
from projlab.data.sources import LlavaSource, Source, SpatialSource
from projlab.errors import UserError
from projlab.models.language import LanguageModel
from projlab.models.mllm import MLLM
from projlab.models.presets import ensure_tiny_llm, ensure_tiny_tower
from projlab.models.vision import VisionTower
from projlab.schema import checkpoint_path, projector_knobs, visual_tokens
from projlab.training.callbacks import FailAt, ProgressFile, progress_bar
from projlab.training.checkpoint_io import AtomicCheckpointIO
from projlab.training.datamodule import QADataModule
from projlab.training.module import MLLMModule, StageConfig
from projlab.training.precision import resolve_precision


def backbone_paths(cfg: DictConfig) -> tuple[str, str]:
    """Where the tower and the LLM load from: the config's paths, a tiny preset's built (once) in the cache."""
    vision, llm = cfg.vision.name_or_path, cfg.llm.name_or_path
    if vision == "tiny":
        vision = ensure_tiny_tower(cfg.paths.cache_dir, int(cfg.vision.get("pretrain_steps") or 0),
                                   resolution=cfg.vision.resolution)
    if llm == "tiny":
        overrides = cfg.llm.get("tiny_config")
        llm = ensure_tiny_llm(cfg.paths.cache_dir, OmegaConf.to_container(overrides) if overrides else None,
                              pretrain_steps=int(cfg.llm.get("pretrain_steps") or 0))
    return vision, llm


def backbones(cfg: DictConfig) -> tuple[VisionTower, LanguageModel]:
    """The run's tower and LLM as `cfg` sets them (gradient checkpointing included)."""
    vision_path, llm_path = backbone_paths(cfg)
    vision = VisionTower(vision_path, cfg.vision.feature_layer, cfg.vision.resolution, cfg.vision.feature_dtype,
                         cfg.vision.image_aspect)
    dtype = getattr(torch, cfg.llm.dtype) if cfg.llm.dtype else None
    llm = LanguageModel(llm_path, dtype=dtype, attn_implementation=cfg.llm.get("attn_implementation"))
    if cfg.llm.gradient_checkpointing:
        llm.model.gradient_checkpointing_enable()
    return vision, llm


def model(cfg: DictConfig, shared: tuple[VisionTower, LanguageModel] | None = None) -> MLLM:
    """The MLLM of `cfg`: its backbones (or `shared` ones: the bench's arms share a preset's), then its
    projector and feature norm."""
    vision, llm = shared or backbones(cfg)
    # seeded here, after the backbones: building a preset the first time must not shift the projector's init
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return MLLM(vision, llm, cfg.projector.name, projector_knobs(cfg), cfg.feature_norm)


def check(cfg: DictConfig) -> int:
    """An arm checked without weights (what a sweep asks before it launches one): the token count M its
    projector makes on the tower's patch grid; UserError if it cannot make the count asked for. `cfg` comes
    from `load_config`, which has checked every other setting."""
    return visual_tokens(cfg)


def sources(cfg: DictConfig) -> dict[str, Source]:
    """The run's data sources by split."""
    d = cfg.data
    if d.name == "spatial":
        splits = ("train", "val", "test")
        return {
            s: SpatialSource(s, d[s], d.seed, d.get("scramble", False), d.max_objects, tuple(d.categories))
            for s in splits
        }
    if d.name == "llava":
        train = LlavaSource(d.train_json, d.image_root)
        val = train if d.val_json == d.train_json else LlavaSource(d.val_json, d.image_root)
        return {"train": train, "val": val}
    raise UserError(f"unknown data source {d.name!r}; known: spatial, llava")


def categories(cfg: DictConfig) -> list[str]:
    """The categories the module scores: the spatial benchmark's, or one for free-form data."""
    return list(cfg.data.categories) if cfg.data.name == "spatial" else ["llava"]


def stage(cfg: DictConfig) -> StageConfig:
    return StageConfig(**OmegaConf.to_container(cfg.stage, resolve=True))


def module(cfg: DictConfig, mllm: MLLM) -> MLLMModule:
    """The LightningModule of `cfg`'s stage around `mllm` (its freeze policy applied)."""
    return MLLMModule(mllm, stage(cfg), categories(cfg))


def text_processor(cfg: DictConfig, llm: LanguageModel, num_visual_tokens: int, capped: bool = True) -> TextProcessor:
    """Prompts in the run's template, each `<image>` as `num_visual_tokens` image tokens; `capped`: with the
    data's length cap on training sequences."""
    max_length = cfg.data.get("max_length") if capped else None
    return TextProcessor(llm.tokenizer, num_visual_tokens, llm.image_token_id, cfg.llm.template, max_length)


def uses_cache(cfg: DictConfig) -> bool:
    """A frozen tower's features come from the feature cache (`feature_cache=auto`)."""
    return cfg.feature_cache == "auto" and "vision" not in cfg.stage.trainable


def datamodule(cfg: DictConfig, mllm: MLLM, split_sources: dict[str, Source] | None = None, *,
               processor: TextProcessor | None = None, workers: int | None = None) -> QADataModule:
    """The DataModule of `cfg` for `mllm` (not set up): the run's sources unless given, the processor at the
    model's M unless given, `trainer.num_workers` loader workers unless given."""
    return QADataModule(
        sources=split_sources if split_sources is not None else sources(cfg),
        processor=processor or text_processor(cfg, mllm.llm, mllm.num_visual_tokens),
        tower=mllm.vision,
        use_cache=uses_cache(cfg),
        cache_dir=cfg.paths.cache_dir,
        batch_size=cfg.stage.batch_size,
        eval_batch_size=cfg.eval.batch_size,
        seed=cfg.seed,
        max_steps=cfg.stage.max_steps,
        num_workers=cfg.trainer.num_workers if workers is None else workers,
        warmup_categories=tuple(cfg.data.get("warmup_categories") or ()),
        warmup_steps=int(cfg.data.get("warmup_steps") or 0),
        token_set=mllm.projector.token_set,  # an elastic projector: each step draws its M from the set
    )


def prepare_data(cfg: DictConfig, mllm: MLLM, dm: QADataModule) -> None:
    """Set `dm` up for training `mllm` (features cached where `cfg` caches them) and set the model's feature
    norm to the training images' statistics (kept with their feature-cache entry)."""
    dm.setup()
    if cfg.feature_norm != "none":
        mllm.feature_norm.set_stats(*dm.feature_stats())


def check_built(cfg: DictConfig, mllm: MLLM) -> None:
    """The run's folder name and config.yaml must describe the model that trains: a value replaced on the way
    (a 0 read as "unset") is a bug, stopped here before a step is taken."""
    built = {"projector.name": mllm.projector.registry_name, "vision.resolution": mllm.vision.resolution}
    wrong = [f"{k}: built {v!r}, config {OmegaConf.select(cfg, k)!r}" for k, v in built.items()
             if OmegaConf.select(cfg, k) != v]
    if wrong:
        raise RuntimeError(f"the model built differs from its config ({'; '.join(wrong)})")


# ---- fitting ---------------------------------------------------------------------------------------------


def callbacks(cfg: DictConfig, run_dir: Path) -> list[L.Callback]:
    """The run's callbacks beside its efficiency monitor: the checkpoints, the learning rate, the progress
    file a sweep's view shows, the progress bar, and every entry of `cfg.callbacks` (<name>: {_target_: a
    Lightning callback class, its arguments}). A callback with a true `pruned` ends the run as pruned."""
    out: list[L.Callback] = [
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0,
            every_n_train_steps=cfg.trainer.checkpoint_every_steps,
        ),
        L.pytorch.callbacks.LearningRateMonitor(logging_interval="step"),
        ProgressFile(run_dir),  # what a sweep's view shows: step, max_steps, this process's rate
    ]
    if cfg.trainer.progress_bar:
        out.append(progress_bar())
    extra = OmegaConf.to_container(cfg.callbacks, resolve=True) if cfg.get("callbacks") else {}
    out += [instantiate(spec) for spec in extra.values()]
    if cfg.fail_at_step is not None:
        out.append(FailAt(cfg.fail_at_step))
    return out


def trainer(cfg: DictConfig, strategy: Strategy | str, logger: Logger, run_callbacks: list[L.Callback]) -> L.Trainer:
    """The Lightning Trainer of `cfg`: steps (no epochs), validation every `eval.val_every_steps`, the
    stage's gradient clipping, atomic checkpoints; the data order is the DataModule's own (`StepSampler`)."""
    max_steps = cfg.stage.max_steps
    return L.Trainer(
        max_steps=max_steps,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=strategy,
        plugins=[AtomicCheckpointIO()],
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
        logger=logger,
        callbacks=run_callbacks,
        val_check_interval=min(cfg.eval.val_every_steps, max_steps),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        gradient_clip_val=cfg.stage.grad_clip if cfg.stage.grad_clip else None,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,
        max_epochs=-1,
    )


def resume_point(run_dir: Path) -> tuple[Path | None, int]:
    """(the run's last checkpoint, its step) to resume from; (None, 0) for a run that has none."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.exists():
        return None, 0
    meta = last / "meta.pt" if last.is_dir() else last  # a distributed checkpoint is a folder
    return last, torch.load(meta, map_location="cpu", weights_only=False)["global_step"]


# ---- a trained run --------------------------------------------------------------------------------------
def init_checkpoint(cfg: DictConfig) -> Path | None:
    """The checkpoint to start from (projlab.schema has checked that it is one, of the expected kind)."""
    return checkpoint_path(cfg.init_from) if cfg.init_from else None


def locate(run_or_ckpt: str | Path) -> tuple[Path, Path]:
    """(run folder, checkpoint) for a run folder or a checkpoint path inside one."""
    path = Path(run_or_ckpt)
    ckpt = path / "checkpoints" / "last.ckpt" if (path / "config.yaml").exists() else path
    run_dir = ckpt.parent.parent
    if not (run_dir / "config.yaml").exists():
        raise UserError(f"'{run_or_ckpt}' is not a run folder (no config.yaml) or a checkpoint inside one")
    if not ckpt.exists():
        raise UserError(f"checkpoint '{ckpt}' does not exist")
    return run_dir, ckpt


def load_state_dict(ckpt: Path) -> dict[str, torch.Tensor]:
    """The model weights of a full checkpoint file, or of a distributed-checkpoint folder (FSDP2 shards)."""
    if ckpt.is_dir():
        from lightning.fabric.utilities.load import _load_distributed_checkpoint  # only a sharded run needs it

        return _load_distributed_checkpoint(ckpt)["state_dict"]
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def load_into(lit: MLLMModule, state: dict[str, torch.Tensor]) -> None:
    """Load with strict=False (frozen weights are not saved), but fail on anything else amiss."""
    try:
        result = lit.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another model or preset than the one that trained
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise UserError(f"checkpoint does not match the model: {lines[1] if len(lines) > 1 else lines[0]}") from err
    trainable = {f"model.{n}" for n, p in lit.model.named_parameters() if p.requires_grad}
    missing = sorted(trainable & set(result.missing_keys))
    if missing or result.unexpected_keys:
        raise UserError(
            f"checkpoint does not match the model: {len(missing)} trainable weights missing "
            f"({', '.join(missing[:3])}), {len(result.unexpected_keys)} unexpected "
            f"({', '.join(result.unexpected_keys[:3])})"
        )


@dataclass
class Trained:
    """A saved run ready to evaluate: its folder, its config, the module holding the checkpoint's weights
    (in eval mode) and its text processor (no length cap: every question is scored)."""

    run_dir: Path
    cfg: DictConfig
    module: MLLMModule
    processor: TextProcessor


def trained(run_or_ckpt: str | Path) -> Trained:
    """The run of a run folder (its last checkpoint) or of a checkpoint inside one, rebuilt from its saved
    config.yaml; the checkpoint holds the trainable weights and buffers, the frozen ones come from the
    backbones, as in training."""
    run_dir, ckpt = locate(run_or_ckpt)
    cfg: DictConfig = OmegaConf.load(run_dir / "config.yaml")
    lit = module(cfg, model(cfg))
    load_into(lit, load_state_dict(ckpt))
    lit.eval()
    return Trained(run_dir, cfg, lit, text_processor(cfg, lit.model.llm, lit.model.num_visual_tokens, capped=False))
