"""The DataModule: sources -> (cached features | pixels) + token ids -> batches."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from projlab.data.prompt import TextProcessor, collate_examples, fitting
from projlab.data.sources import Source
from projlab.errors import UserError
from projlab.models.features import cached_features, cached_stats, channel_stats, compute_features
from projlab.models.vision import VisionTower
from projlab.training.likelihood import option_batch
from projlab.training.sampler import StepSampler


class SplitDataset(Dataset):
    """The items of a source that `keep` lists (those that fit the length cap), each with its features (rows
    of the source's feature cache) or its image, and the token count M its step drew (an elastic projector's
    sampler gives (index, M); else None)."""

    def __init__(self, source: Source, features: torch.Tensor | None, keep: list[int]) -> None:
        self.source, self.features, self.keep = source, features, keep

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, key: int | tuple[int, int]):
        i, m = key if isinstance(key, tuple) else (key, None)
        j = self.keep[i]
        visual = self.features[j] if self.features is not None else self.source.image(j)
        return self.source.items[j], visual, m

    @property
    def items(self) -> list:
        return [self.source.items[j] for j in self.keep]


class QADataModule(L.LightningDataModule):
    def __init__(
        self,
        sources: dict[str, Source],
        processor: TextProcessor,
        tower: VisionTower,
        use_cache: bool,
        cache_dir: str | Path,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        max_steps: int,
        num_workers: int = 0,
        warmup_categories: tuple[str, ...] = (),
        warmup_steps: int = 0,
        token_set: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self.sources, self.processor, self.tower = sources, processor, tower
        self.use_cache, self.cache_dir = use_cache, cache_dir
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.seed, self.max_steps, self.num_workers = seed, max_steps, num_workers
        self.warmup_categories, self.warmup_steps = tuple(warmup_categories), warmup_steps  # `StepSampler.first`
        self.token_set = tuple(token_set)  # an elastic projector's Ms: each training step draws one
        self.datasets: dict[str, SplitDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split, source in self.sources.items():
            if split in self.datasets:
                continue
            feats = None
            if self.use_cache:
                feats = cached_features(self.tower, source.image, len(source.items), source.signature(), self.cache_dir,
                                        source.has_image)
            keep = fitting(source.items, self.processor)
            if not keep:
                raise UserError(f"no {split} record fits data.max_length={self.processor.max_length}; give a "
                                "larger one")
            if len(keep) < len(source.items):
                print(f"data: {len(source.items) - len(keep)} of {len(source.items)} {split} records left out: "
                      f"longer than data.max_length={self.processor.max_length} where the cap would cut their image "
                      "tokens or leave no answer token")
            self.datasets[split] = SplitDataset(source, feats, keep)

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel statistics of the training split's image features (kept with its feature-cache entry
        where there is one; text-only records' blank images left out)."""
        self.setup()
        source, feats = self.datasets["train"].source, self.datasets["train"].features
        with_image = [i for i in range(len(source.items)) if source.has_image(i)]
        if not with_image:  # text only: nothing to standardise
            return torch.zeros(self.tower.hidden_size), torch.ones(self.tower.hidden_size)
        if feats is None:
            return channel_stats(compute_features(self.tower, lambda k: source.image(with_image[k]), len(with_image)))
        return cached_stats(self.tower, source.signature(), self.cache_dir, feats, with_image)

    # ---- batches ---------------------------------------------------------------------------
    def _visual(self, visuals: list) -> dict[str, torch.Tensor]:
        if isinstance(visuals[0], torch.Tensor):
            return {"features": torch.stack(visuals).float()}
        return {"pixel_values": self.tower.preprocess(visuals)}

    def collate_train(self, batch: list) -> dict[str, torch.Tensor]:
        """Token ids, labels and features; where the step drew a token count M (an elastic projector), each
        `<image>` expands to M image tokens and the batch says `num_visual_tokens` = M."""
        items, visuals, drawn = zip(*batch)
        if drawn[0] is None:
            return {**collate_train_examples(items, self.processor), **self._visual(list(visuals))}
        processor = replace(self.processor, num_visual_tokens=drawn[0])
        return {**collate_train_examples(items, processor), **self._visual(list(visuals)),
                "num_visual_tokens": drawn[0]}

    def collate_eval(self, batch: list) -> dict:
        items, visuals, _ = zip(*batch)
        out: dict = {"items": list(items), **self._visual(list(visuals))}
        if items[0].options:
            out["options"] = option_batch(list(items), self.processor)
        else:  # free-form data: loss only
            out["targets"] = collate_train_examples(items, self.processor)
        return out

    def fixed_batch(self, split: str, n: int, processor: TextProcessor | None = None) -> dict[str, torch.Tensor]:
        """The first `n` items of `split` as one batch: their question-and-answer token ids (the image
        expanded to `processor`'s M; default the module's) and their features or pixels. The same images for
        every arm of one data seed (the locality diagnostics are measured on it)."""
        ds = self.datasets[split]
        items, visuals, _ = zip(*(ds[i] for i in range(min(n, len(ds)))))
        return {**collate_train_examples(items, processor or self.processor), **self._visual(list(visuals))}

    def _warmup_indices(self) -> list[int] | None:
        """The training items of the warm-up categories (None: no warm-up)."""
        if not self.warmup_steps or not self.warmup_categories:
            return None
        items = self.datasets["train"].items
        return [i for i, it in enumerate(items) if it.category in self.warmup_categories]

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = StepSampler(
            len(self.datasets["train"]), self.batch_size, self.seed, self.max_steps,
            start_step=trainer.global_step if trainer else 0,
            rank=trainer.global_rank if trainer else 0, world_size=trainer.world_size if trainer else 1,
            first=self._warmup_indices(), first_steps=self.warmup_steps, token_set=self.token_set,
        )
        return DataLoader(
            self.datasets["train"], batch_size=self.batch_size, sampler=sampler, collate_fn=self.collate_train,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(
            self.datasets[split], batch_size=self.eval_batch_size, shuffle=False, collate_fn=self.collate_eval,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


def collate_train_examples(items, processor: TextProcessor) -> dict[str, torch.Tensor]:
    examples = [processor.encode(it) for it in items]  # each fits: the datasets keep only those that do
    return collate_examples(examples, processor.tokenizer.pad_token_id)
