"""Score a run's saved checkpoint again, in one process, on the run's own test split.

    python -m projlab.evaluation.checkpoint_eval runs/<sweep>/<arm>      # prints the metrics as JSON

Why: a checkpoint written by a sharded (FSDP) or multi-process run must load into a plain single-process
model and give the metrics the run reported; this is how that is checked, and how a checkpoint is re-scored
without training. The run's saved config.yaml rebuilds the model and data; the checkpoint holds the
trainable weights and buffers (frozen weights come from the backbones, as in training).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from projlab.cli import ArgumentParser
from projlab.data.prompt import TextProcessor
from projlab.data.spatial import CATEGORIES
from projlab.errors import UserError, exit_on_user_error
from projlab.evaluation.each_m import is_elastic, test_each_m
from projlab.training.datamodule import QADataModule
from projlab.training.module import MLLMModule, StageConfig


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
        from lightning.fabric.utilities.load import _load_distributed_checkpoint

        return _load_distributed_checkpoint(ckpt)["state_dict"]
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def load_into(module: MLLMModule, state: dict[str, torch.Tensor]) -> None:
    """Load with strict=False (frozen weights are not saved), but fail on anything else amiss."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shapes differ: another model or preset than the one that trained
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        raise UserError(f"checkpoint does not match the model: {lines[1] if len(lines) > 1 else lines[0]}") from err
    trainable = {f"model.{n}" for n, p in module.model.named_parameters() if p.requires_grad}
    missing = sorted(trainable & set(result.missing_keys))
    if missing or result.unexpected_keys:
        raise UserError(
            f"checkpoint does not match the model: {len(missing)} trainable weights missing "
            f"({', '.join(missing[:3])}), {len(result.unexpected_keys)} unexpected "
            f"({', '.join(result.unexpected_keys[:3])})"
        )


def load_run(run_or_ckpt: str | Path) -> tuple[Path, DictConfig, MLLMModule, TextProcessor]:
    """(run folder, its config, the module with the checkpoint's weights, its text processor)."""
    from projlab.train import build_model

    run_dir, ckpt = locate(run_or_ckpt)
    cfg: DictConfig = OmegaConf.load(run_dir / "config.yaml")
    stage = StageConfig(**OmegaConf.to_container(cfg.stage, resolve=True))
    model = build_model(cfg)
    module = MLLMModule(model, stage, list(CATEGORIES) if cfg.data.name == "spatial" else ["llava"])
    load_into(module, load_state_dict(ckpt))
    module.eval()
    processor = TextProcessor(model.llm.tokenizer, model.num_visual_tokens, model.llm.image_token_id, cfg.llm.template)
    return run_dir, cfg, module, processor


def evaluate_checkpoint(run_or_ckpt: str | Path, accelerator: str = "auto") -> dict:
    """Test metrics of a run's checkpoint in one process: accuracy, n, loss, per_category and locality (as in
    results.json), at the projector's built M; an elastic projector's at every M of its set under `by_tokens`
    ({"<M>": the same keys})."""
    from projlab.train import build_sources

    run_dir, cfg, module, processor = load_run(run_or_ckpt)
    model, stage = module.model, module.stage
    sources = build_sources(cfg)
    if "test" not in sources:
        raise UserError(f"data {cfg.data.name!r} has no test split to evaluate on")
    use_cache = cfg.feature_cache == "auto" and "vision" not in stage.trainable
    dm = QADataModule(sources, processor, model.vision, use_cache, cfg.paths.cache_dir, stage.batch_size,
                      cfg.eval.batch_size, cfg.seed, stage.max_steps, 0)
    trainer = L.Trainer(accelerator=accelerator, devices=1, strategy="auto", precision="32-true", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False)
    by_m = test_each_m(trainer, module, dm, processor)
    scores = dict(by_m[model.num_visual_tokens])
    if is_elastic(model.projector):  # an elastic projector: scored at every M of its set
        scores["by_tokens"] = {str(m): s for m, s in by_m.items()}
    return scores


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(prog="python -m projlab.evaluation.checkpoint_eval", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (runs/<sweep>/<arm>) or a checkpoint inside one")
    parser.add_argument("--accelerator", default="auto", help="auto | cpu | gpu")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(json.dumps(evaluate_checkpoint(args.run, args.accelerator), indent=2))


if __name__ == "__main__":
    main()
