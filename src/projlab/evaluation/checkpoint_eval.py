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

from projlab import build
from projlab.cli import ArgumentParser
from projlab.errors import UserError, exit_on_user_error
from projlab.evaluation.each_m import test_each_m
from projlab.models.token_sets import is_elastic


def evaluate_checkpoint(run_or_ckpt: str | Path, accelerator: str = "auto") -> dict:
    """Test metrics of a run's checkpoint in one process: accuracy, n, loss, per_category and locality (as in
    results.json), at the projector's built M; an elastic projector's at every M of its set under `by_tokens`
    ({"<M>": the same keys})."""
    run = build.trained(run_or_ckpt)
    cfg, module, processor, model = run.cfg, run.module, run.processor, run.module.model
    sources = build.sources(cfg)
    if "test" not in sources:
        raise UserError(f"data {cfg.data.name!r} has no test split to evaluate on")
    dm = build.datamodule(cfg, model, sources, processor=processor, workers=0)
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
