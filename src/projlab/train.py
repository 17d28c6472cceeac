"""Train one arm: compose the config, build the model and data, fit, test, write results.json.

    python -m projlab.train projector=c_abstractor projector.num_visual_tokens=144 seed=0
    python -m projlab.train -m projector=c_abstractor,resampler projector.num_visual_tokens=64,144  (a sweep:
        projlab.sweeps.multirun)

Thin on purpose: the model, the data and the recipe live in their own modules; sweeps call this as a
process and read only the results.json it leaves. Exit code: 0 done (or already completed), 1 a crash
(recorded in results.json), 2 a user's mistake (one line), 75 the run folder is in use by another process.
"""
from __future__ import annotations

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

from projlab import build, results, run_lock  # noqa: E402
from projlab.config import load_config, run_name  # noqa: E402
from projlab.console import quiet_third_party  # noqa: E402
from projlab.errors import UserError, exit_on_user_error  # noqa: E402
from projlab.evaluation.each_m import test_each_m  # noqa: E402
from projlab.models.token_sets import is_elastic  # noqa: E402
from projlab.io import atomic_write, write_json  # noqa: E402
from projlab.run_folder import CONFIG_FILE, check_config, set_aside  # noqa: E402
from projlab.sweeps import multirun  # noqa: E402
from projlab.training.callbacks import EfficiencyMonitor  # noqa: E402
from projlab.training.efficiency import model_efficiency  # noqa: E402
from projlab.training.hparams_session import write_session  # noqa: E402
from projlab.training.memory import peak_rss_mb  # noqa: E402
from projlab.training.precision import resolve_precision  # noqa: E402
from projlab.training.strategy import build_strategy  # noqa: E402


def is_rank_zero() -> bool:
    """Rank 0 of a distributed run (Lightning reads the launcher's environment), or a single process."""
    return rank_zero_only.rank == 0


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
    previous = results.read_results(run_dir)
    if previous and previous.get("status") == "completed" and not cfg.rerun:
        print(f"{run_dir}: already completed (rerun=true to train again)")
        return previous
    if cfg.rerun and is_rank_zero() and (moved := set_aside(run_dir)):
        print(f"{run_dir}: rerun=true; the previous run is set aside in {moved}")
    try:
        return _run(cfg, run_dir)
    except Exception as err:
        if is_rank_zero() and not isinstance(err, UserError):
            results.write_results(run_dir, results.failed(run_dir, cfg, err))
        raise


def _run(cfg: DictConfig, run_dir: Path) -> dict:
    torch.set_flush_denormal(True)  # on CPUs, denormal floats can make a step 100x slower
    init = build.init_checkpoint(cfg)
    model = build.model(cfg)
    build.check_built(cfg, model)
    strategy, world_size = build_strategy(cfg.trainer, model)
    module = build.module(cfg, model)
    if init is not None:  # stage 1's trainable weights; what stage 1 froze comes from the backbones
        state = build.load_state_dict(init)
        missing = module.load_state_dict(state, strict=False)
        print(f"init_from {init}: loaded {len(state)} tensors ({len(missing.unexpected_keys)} unexpected)")
    dm = build.datamodule(cfg, model)
    t_data = time.perf_counter()
    build.prepare_data(cfg, model, dm)
    t_data = time.perf_counter() - t_data

    precision = resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    base = {"run_dir": str(run_dir), "config": results.run_config(cfg, model, world_size, precision)}
    if is_rank_zero():
        results.write_results(run_dir, {**base, "status": "running", "error": None})
        atomic_write(run_dir / CONFIG_FILE, lambda tmp: OmegaConf.save(cfg, tmp))
    print("\n".join(module.freeze_report))

    efficiency = model_efficiency(model, dm.processor, dm.datasets["train"].items[0])
    monitor = EfficiencyMonitor(model.num_visual_tokens)
    callbacks = [monitor, *build.callbacks(cfg, run_dir)]
    logger = L.pytorch.loggers.TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False)
    logger.log_hyperparams({k: v for k, v in base["config"].items() if k != "full"})
    trainer = build.trainer(cfg, strategy, logger, callbacks)
    last, resumed_from = build.resume_point(run_dir)
    if resumed_from:
        print(f"resuming from {last} at step {resumed_from}")
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if last else None)
    wall = time.perf_counter() - t0
    # the locality diagnostics on rank 0, not under FSDP (only a forward of every rank gathers its shards)
    diagnose = trainer.global_rank == 0 and cfg.trainer.strategy != "fsdp"
    by_m = test_each_m(trainer, module, dm, dm.processor, diagnose) if "test" in dm.sources else {}
    if trainer.global_rank != 0:
        return {}
    test = module.last_test if "test" in dm.sources else module.last_val
    batch_size = cfg.stage.batch_size
    record = {
        **base,
        "status": "pruned" if any(getattr(c, "pruned", False) for c in callbacks) else "completed",
        "error": None,
        "efficiency": {
            **efficiency,
            **monitor.summary(batch_size, world_size),
            "peak_tensor_mb": monitor.peak_tensor_mb,  # the model's own: weights, grads, state, activations
            "peak_rss_mb": peak_rss_mb(),  # the process's (libraries, the memory-mapped feature cache)
            "cpu_threads": torch.get_num_threads(),  # step times depend on it (a parallel sweep splits the cores)
            "steps": trainer.global_step,
            "resumed_from_step": resumed_from,
            "samples": trainer.global_step * batch_size * world_size,
            "wall_time_s": wall,
            "data_setup_s": t_data,
            "feature_cache": build.uses_cache(cfg),
        },
        "metrics": results.run_metrics(test, module.metrics["test"].categories, module.train_losses,
                                       getattr(module, "last_val", None)),
    }
    if by_m:
        record["metrics"]["locality"] = by_m[model.num_visual_tokens]["locality"]
    if is_elastic(model.projector):  # scored at every M of its set: the curve of one run
        record["metrics"]["by_tokens"] = {str(m): scores for m, scores in by_m.items()}
    write_json(run_dir / "predictions_test.json", module.test_predictions)
    results.write_results(run_dir, record)
    write_session(logger.log_dir, record)  # the arm's row of TensorBoard's HPARAMS tab
    acc = record["metrics"]["accuracy"]
    print(f"{run_dir}: " + (f"accuracy {acc:.3f}" if acc is not None else f"loss {test['loss']:.3f}") + f" in {wall:.0f} s")
    return record


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    quiet_third_party()
    argv = sys.argv[1:] if argv is None else argv
    if "-m" in argv or "--multirun" in argv:  # Hydra's sweep syntax: the grid's executor, one process per arm
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
