"""Train one arm: compose the config, build the model and data, fit, test, write results.json.

    python -m projlab.train projector=c_abstractor projector.num_visual_tokens=144 seed=0
    python -m projlab.train -m projector=c_abstractor,resampler projector.num_visual_tokens=64,144  (a sweep:
        projlab.sweeps.multirun)

Thin on purpose: the model, the data and the recipe live in their own modules; sweeps call this as a
process and read only the results.json it leaves. Exit code: 0 done (or already completed), 1 a crash
(recorded in results.json), 2 a user's mistake (one line), 75 the run folder is in use by another process.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from projlab import run_lock  # noqa: E402
from projlab.console import quiet_third_party  # noqa: E402
from projlab.config import load_config, projector_knobs, run_name  # noqa: E402
from projlab.data.prompt import TextProcessor  # noqa: E402
from projlab.data.sources import LlavaSource, SpatialSource  # noqa: E402
from projlab.errors import UserError, exit_on_user_error  # noqa: E402
from projlab.evaluation.each_m import is_elastic, test_each_m  # noqa: E402
from projlab.io import atomic_write  # noqa: E402
from projlab.models.language import LanguageModel  # noqa: E402
from projlab.models.mllm import MLLM  # noqa: E402
from projlab.models.presets import ensure_tiny_llm, ensure_tiny_tower  # noqa: E402
from projlab.models.vision import VisionTower  # noqa: E402
from projlab.results import read_results, write_results  # noqa: E402
from projlab.run_folder import CONFIG_FILE, check_config, set_aside  # noqa: E402
from projlab.schema import checkpoint_path  # noqa: E402
from projlab.training.callbacks import EfficiencyMonitor, ProgressFile, progress_bar  # noqa: E402
from projlab.training.checkpoint_io import AtomicCheckpointIO  # noqa: E402
from projlab.training.datamodule import QADataModule  # noqa: E402
from projlab.training.efficiency import model_efficiency  # noqa: E402
from projlab.training.hparams_session import write_session  # noqa: E402
from projlab.training.memory import peak_rss_mb  # noqa: E402
from projlab.training.module import MLLMModule, StageConfig  # noqa: E402
from projlab.training.precision import resolve_precision  # noqa: E402
from projlab.training.strategy import build_strategy  # noqa: E402


def is_rank_zero() -> bool:
    """Rank 0 of a distributed run (Lightning reads the launcher's environment), or a single process."""
    return rank_zero_only.rank == 0


def backbone_paths(cfg: DictConfig) -> tuple[str, str]:
    vision, llm = cfg.vision.name_or_path, cfg.llm.name_or_path
    if vision == "tiny":
        vision = ensure_tiny_tower(cfg.paths.cache_dir, int(cfg.vision.get("pretrain_steps") or 0),
                                   resolution=cfg.vision.resolution)
    if llm == "tiny":
        overrides = cfg.llm.get("tiny_config")
        llm = ensure_tiny_llm(cfg.paths.cache_dir, OmegaConf.to_container(overrides) if overrides else None,
                              pretrain_steps=int(cfg.llm.get("pretrain_steps") or 0))
    return vision, llm


def build_backbones(cfg: DictConfig) -> tuple[VisionTower, LanguageModel]:
    """The run's tower and LLM as `cfg` sets them (the bench loads its presets through this too)."""
    vision_path, llm_path = backbone_paths(cfg)
    vision = VisionTower(vision_path, cfg.vision.feature_layer, cfg.vision.resolution, cfg.vision.feature_dtype,
                         cfg.vision.image_aspect)
    dtype = getattr(torch, cfg.llm.dtype) if cfg.llm.dtype else None
    llm = LanguageModel(llm_path, dtype=dtype, attn_implementation=cfg.llm.get("attn_implementation"))
    if cfg.llm.gradient_checkpointing:
        llm.model.gradient_checkpointing_enable()
    return vision, llm


def build_model(cfg: DictConfig) -> MLLM:
    vision, llm = build_backbones(cfg)
    # seeded here, after the backbones: building a preset the first time must not shift the projector's init
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return MLLM(vision, llm, cfg.projector.name, projector_knobs(cfg), cfg.feature_norm)


def build_sources(cfg: DictConfig) -> dict:
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


def init_checkpoint(cfg: DictConfig) -> Path | None:
    """The checkpoint to start from (projlab.schema has checked that it is one, of the expected kind)."""
    return checkpoint_path(cfg.init_from) if cfg.init_from else None


def check_built(cfg: DictConfig, model: MLLM) -> None:
    """The run's folder name and config.yaml must describe the model that trains: a value replaced on the way
    (a 0 read as "unset") is a bug, stopped here before a step is taken."""
    built = {"projector.name": model.projector.registry_name, "vision.resolution": model.vision.resolution}
    wrong = [f"{k}: built {v!r}, config {OmegaConf.select(cfg, k)!r}" for k, v in built.items()
             if OmegaConf.select(cfg, k) != v]
    if wrong:
        raise RuntimeError(f"the model built differs from its config ({'; '.join(wrong)})")


def summary_config(cfg: DictConfig, model: MLLM, world_size: int) -> dict:
    return {
        "projector": model.projector.registry_name,
        "num_visual_tokens": model.num_visual_tokens,
        "resolution": model.vision.resolution,
        "grid": list(model.vision.grid),
        "image_aspect": model.vision.image_aspect,
        "seed": cfg.seed,
        "preset": cfg.preset,
        "stage": cfg.stage.name,
        "feature_layer": cfg.vision.feature_layer,
        "feature_norm": cfg.feature_norm,
        "max_steps": cfg.stage.max_steps,
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
        "batch_size": cfg.stage.batch_size,
        "world_size": world_size,
        "eval_batch_size": cfg.eval.batch_size,
        "sweep": cfg.sweep,
        "control": "scrambled" if cfg.data.get("scramble") else None,
        "token_set": list(model.projector.token_set),  # every M it serves: [M], or an elastic projector's set
        # every knob of the projector as built, the dataclass defaults the yaml leaves out included (init...)
        "projector_settings": dataclasses.asdict(model.projector.config),
        "full": OmegaConf.to_container(cfg, resolve=True),
    }


class FailAt(L.Callback):
    """Raise at a given step: how tests and users check that a sweep survives a failing arm."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError(f"injected failure at step {trainer.global_step}")


def run(cfg: DictConfig) -> dict:
    """Train and test one arm; return its results record. Any failure is recorded in results.json
    (status failed, one error line) before it propagates, so a sweep can read what happened. Rank 0 holds
    the run folder's lock throughout (run_lock.Busy if another process holds it); every rank first checks
    that the folder holds no run of other settings."""
    run_dir = Path(cfg.paths.runs_root) / cfg.sweep / run_name(cfg)
    check_config(run_dir, cfg)  # before anything is created
    if not is_rank_zero():
        return _attempt(cfg, run_dir)
    with run_lock.hold(run_dir) as stale:
        if stale:
            print(f"{run_dir}: took over the lock of {stale} (no longer running)")
        check_config(run_dir, cfg)  # again, now that no other process can write the folder
        return _attempt(cfg, run_dir)


def _attempt(cfg: DictConfig, run_dir: Path) -> dict:
    previous = read_results(run_dir)
    if previous and previous.get("status") == "completed" and not cfg.rerun:
        print(f"{run_dir}: already completed (rerun=true to train again)")
        return previous
    if cfg.rerun and is_rank_zero() and (moved := set_aside(run_dir)):
        print(f"{run_dir}: rerun=true; the previous run is set aside in {moved}")
    try:
        return _run(cfg, run_dir)
    except Exception as err:
        if is_rank_zero() and not isinstance(err, UserError):
            record = read_results(run_dir) or {"run_dir": str(run_dir), "config": {"full": OmegaConf.to_container(cfg)}}
            msg = str(err).splitlines()[0] if str(err) else ""
            write_results(run_dir, {**record, "status": "failed", "error": f"{type(err).__name__}: {msg}"})
        raise


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    torch.set_flush_denormal(True)  # on CPUs, denormal floats can make a step 100x slower
    stage = StageConfig(**OmegaConf.to_container(cfg.stage, resolve=True))
    init = init_checkpoint(cfg)
    model = build_model(cfg)
    check_built(cfg, model)
    strategy, world_size = build_strategy(cfg.trainer, model)
    module = MLLMModule(model, stage, list(cfg.data.categories) if cfg.data.name == "spatial" else ["llava"])
    if init is not None:  # stage 1's trainable weights; what stage 1 froze comes from the backbones
        from projlab.evaluation.checkpoint_eval import load_state_dict

        state = load_state_dict(init)
        missing = module.load_state_dict(state, strict=False)
        print(f"init_from {init}: loaded {len(state)} tensors ({len(missing.unexpected_keys)} unexpected)")

    processor = TextProcessor(model.llm.tokenizer, model.num_visual_tokens, model.llm.image_token_id, cfg.llm.template,
                              cfg.data.get("max_length"))
    use_cache = cfg.feature_cache == "auto" and "vision" not in stage.trainable
    dm = QADataModule(
        build_sources(cfg), processor, model.vision, use_cache, cfg.paths.cache_dir, stage.batch_size,
        cfg.eval.batch_size, cfg.seed, stage.max_steps, cfg.trainer.num_workers,
        warmup_categories=tuple(cfg.data.get("warmup_categories") or ()),
        warmup_steps=int(cfg.data.get("warmup_steps") or 0),
        token_set=model.projector.token_set,  # an elastic projector: each step draws its M from the set
    )
    t_data = time.perf_counter()
    dm.setup()
    if cfg.feature_norm != "none":
        model.feature_norm.set_stats(*dm.feature_stats())
    t_data = time.perf_counter() - t_data

    base = {"run_dir": str(run_dir), "config": summary_config(cfg, model, world_size)}
    if is_rank_zero():
        write_results(run_dir, {**base, "status": "running", "error": None})
        atomic_write(run_dir / CONFIG_FILE, lambda tmp: OmegaConf.save(cfg, tmp))
    print("\n".join(module.freeze_report))

    efficiency = model_efficiency(model, processor, dm.datasets["train"].items[0])
    monitor = EfficiencyMonitor(model.num_visual_tokens)
    callbacks: list[L.Callback] = [
        monitor,
        L.pytorch.callbacks.ModelCheckpoint(
            dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0,
            every_n_train_steps=cfg.trainer.checkpoint_every_steps,
        ),
        L.pytorch.callbacks.LearningRateMonitor(logging_interval="step"),
        ProgressFile(run_dir),  # what a sweep's view shows: step, max_steps, this process's rate
    ]
    if cfg.trainer.progress_bar:
        callbacks.append(progress_bar())
    pruning = None
    if cfg.get("optuna"):  # a trial of `python -m projlab.sweeps.search`: report to the study, stop if pruned
        from projlab.sweeps.pruning import OptunaPruning

        pruning = OptunaPruning(**cfg.optuna)
        callbacks.append(pruning)
    if cfg.fail_at_step is not None:
        callbacks.append(FailAt(cfg.fail_at_step))
    logger = L.pytorch.loggers.TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False)
    logger.log_hyperparams({k: v for k, v in base["config"].items() if k != "full"})
    trainer = L.Trainer(
        max_steps=stage.max_steps,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=strategy,
        plugins=[AtomicCheckpointIO()],
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
        logger=logger,
        callbacks=callbacks,
        val_check_interval=min(cfg.eval.val_every_steps, stage.max_steps),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        gradient_clip_val=stage.grad_clip if stage.grad_clip else None,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,
        max_epochs=-1,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    meta = last / "meta.pt" if last.is_dir() else last  # a distributed checkpoint is a folder
    resumed_from = torch.load(meta, map_location="cpu", weights_only=False)["global_step"] if last.exists() else 0
    if resumed_from:
        print(f"resuming from {last} at step {resumed_from}")
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if last.exists() else None)
    wall = time.perf_counter() - t0
    # the locality diagnostics on rank 0, not under FSDP (only a forward of every rank gathers its shards)
    diagnose = trainer.global_rank == 0 and cfg.trainer.strategy != "fsdp"
    by_m = test_each_m(trainer, module, dm, processor, diagnose) if "test" in dm.sources else {}
    if trainer.global_rank != 0:
        return {}
    test = module.last_test if "test" in dm.sources else module.last_val
    losses = module.train_losses
    tail = losses[-50:] if losses else []
    record = {
        **base,
        "status": "pruned" if pruning is not None and pruning.pruned else "completed",
        "error": None,
        "efficiency": {
            **efficiency,
            **monitor.summary(stage.batch_size, world_size),
            "peak_tensor_mb": monitor.peak_tensor_mb,  # the model's own: weights, grads, state, activations
            "peak_rss_mb": peak_rss_mb(),  # the process's (libraries, the memory-mapped feature cache)
            "cpu_threads": torch.get_num_threads(),  # step times depend on it (a parallel sweep splits the cores)
            "steps": trainer.global_step,
            "resumed_from_step": resumed_from,
            "samples": trainer.global_step * stage.batch_size * world_size,
            "wall_time_s": wall,
            "data_setup_s": t_data,
            "feature_cache": use_cache,
        },
        "metrics": {
            "accuracy": test.get("acc"),
            "n": int(sum(test.get(f"n_{c}", 0) for c in module.metrics["test"].categories)),
            "loss": test["loss"],
            "per_category": {
                c: {"accuracy": test[f"acc_{c}"], "n": int(test[f"n_{c}"])}
                for c in module.metrics["test"].categories if f"acc_{c}" in test
            },
            "predicted_histogram": {k[-1]: v for k, v in test.items() if k.startswith("pred_frac_")},
            "train_loss_final": sum(tail) / len(tail) if tail else None,
            "val": getattr(module, "last_val", None),
        },
    }
    if by_m:
        record["metrics"]["locality"] = by_m[model.num_visual_tokens]["locality"]
    if is_elastic(model.projector):  # scored at every M of its set: the curve of one run
        record["metrics"]["by_tokens"] = {str(m): scores for m, scores in by_m.items()}
    from projlab.io import write_json

    write_json(run_dir / "predictions_test.json", module.test_predictions)
    write_results(run_dir, record)
    write_session(logger.log_dir, record)  # the arm's row of TensorBoard's HPARAMS tab
    acc = record["metrics"]["accuracy"]
    print(f"{run_dir}: " + (f"accuracy {acc:.3f}" if acc is not None else f"loss {test['loss']:.3f}") + f" in {wall:.0f} s")
    return record


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    quiet_third_party()
    argv = sys.argv[1:] if argv is None else argv
    if "-m" in argv or "--multirun" in argv:  # Hydra's sweep syntax: the grid's executor, one process per arm
        from projlab.sweeps import multirun

        return multirun.main([a for a in argv if a not in multirun.MULTIRUN_FLAGS])
    cfg = load_config(argv)
    try:
        run(cfg)
    except UserError:
        raise
    except run_lock.Busy as busy:  # nothing was done: say who holds the folder
        print(busy, file=sys.stderr)
        sys.exit(run_lock.BUSY_EXIT)
    except Exception:
        traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    main()
