"""Testing a trained module at every token count M its projector serves (`projlab.models.token_sets`), with
the locality diagnostics at each."""
from __future__ import annotations

import lightning as L
import torch

from projlab.data.prompt import TextProcessor
from projlab.evaluation.locality import locality
from projlab.models.token_sets import at_each_m
from projlab.results import test_scores
from projlab.training.datamodule import QADataModule
from projlab.training.module import MLLMModule


def test_each_m(trainer: L.Trainer, module: MLLMModule, dm: QADataModule, processor: TextProcessor,
                diagnose: bool = True) -> dict[int, dict]:
    """`trainer.test` at every M the projector serves: {M: test_scores, with `locality` (the diagnostics of
    `projlab.evaluation.locality` on the test split's first eval batch; None where not `diagnose`)}. The
    built M is tested last, so the module's last test and predictions are its."""
    categories = module.metrics["test"].categories

    def at(p: TextProcessor) -> dict:
        dm.processor = p  # the test loader's collate expands each <image> to this M
        trainer.test(module, datamodule=dm, verbose=False)
        scores = test_scores(module.last_test, categories)
        scores["locality"] = diagnostics(module, dm) if diagnose else None
        return scores

    try:
        return at_each_m(module.model.projector, processor, at)
    finally:
        dm.processor = processor


@torch.no_grad()
def diagnostics(module: MLLMModule, dm: QADataModule) -> dict | None:
    """The locality diagnostics of the module's model at the M it emits now, on the test split's first eval
    batch (the same images for every arm of a data seed)."""
    model = module.model
    batch = dm.fixed_batch("test", dm.eval_batch_size)
    device = next(model.llm.parameters()).device
    features = batch.get("features")
    features = model.vision(batch["pixel_values"].to(device)) if features is None else features.to(device)
    return locality(model, batch["input_ids"].to(device), batch["attention_mask"].to(device), features)
