"""Scoring a projector at every token count M it serves: once for a projector with one M, once per M of its
set for an elastic one (`Projector.token_set`), the projector emitting that M and the prompts expanding each
`<image>` to as many image tokens, so the LLM's sequence follows M."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable, TypeVar

import torch

from projlab.data.prompt import TextProcessor
from projlab.evaluation.locality import locality
from projlab.projectors.base import Projector

if TYPE_CHECKING:
    import lightning as L

    from projlab.training.datamodule import QADataModule
    from projlab.training.module import MLLMModule

T = TypeVar("T")


def token_order(projector: Projector) -> list[int]:
    """The Ms the projector serves, ascending, its built M last: what a caller reads after the loop (the
    module's last test, its predictions) is the built M's."""
    return [m for m in projector.token_set if m != projector.built_tokens] + [projector.built_tokens]


def at_each_m(projector: Projector, processor: TextProcessor, score: Callable[[TextProcessor], T]) -> dict[int, T]:
    """{M: score(processor at M)} for every M the projector serves, each scored while it emits that M."""
    out: dict[int, T] = {}
    for m in token_order(projector):
        with projector.emitting(m):
            out[m] = score(replace(processor, num_visual_tokens=m))
    return {m: out[m] for m in sorted(out)}


def is_elastic(projector: Projector) -> bool:
    """Serves more than one M (results then hold its scores per M: `by_tokens`)."""
    return len(projector.token_set) > 1


def test_scores(test: dict[str, float], categories: list[str]) -> dict:
    """A test's accuracy, n, loss and per-category scores, as results.json holds them."""
    found = [c for c in categories if f"acc_{c}" in test]
    return {
        "accuracy": test.get("acc"),
        "n": int(sum(test[f"n_{c}"] for c in found)),
        "loss": test["loss"],
        "per_category": {c: {"accuracy": test[f"acc_{c}"], "n": int(test[f"n_{c}"])} for c in found},
    }


def test_each_m(trainer: "L.Trainer", module: "MLLMModule", dm: "QADataModule", processor: TextProcessor,
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
def diagnostics(module: "MLLMModule", dm: "QADataModule") -> dict | None:
    """The locality diagnostics of the module's model at the M it emits now, on the test split's first eval
    batch (the same images for every arm of a data seed)."""
    model = module.model
    batch = dm.fixed_batch("test", dm.eval_batch_size)
    device = next(model.llm.parameters()).device
    features = batch.get("features")
    features = model.vision(batch["pixel_values"].to(device)) if features is None else features.to(device)
    return locality(model, batch["input_ids"].to(device), batch["attention_mask"].to(device), features)
