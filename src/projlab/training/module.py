"""The LightningModule: a training stage of the MLLM (freeze policy, optimiser, schedule) and its
multiple-choice evaluation per category. Knows nothing of sweeps."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, SumMetric

from projlab.data.spatial import LETTERS
from projlab.errors import UserError
from projlab.models.mllm import MLLM
from projlab.training.likelihood import choose
from projlab.training.strategy import configure_sharding


@dataclass
class StageConfig:
    name: str = "joint"
    trainable: list[str] = field(default_factory=lambda: ["projector", "llm"])
    requires_init: bool = False
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_steps: int = 50
    max_steps: int = 2100
    batch_size: int = 32
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_clip: float = 1.0
    projector_lr_scale: float = 1.0  # the projector's learning rate relative to `lr` (the rest's)


class MCMetrics(nn.Module):
    """Accuracy overall and per category, n per category, and the histogram of predicted options."""

    def __init__(self, categories: list[str]) -> None:
        super().__init__()
        self.categories = list(categories)
        # each rank scores the whole split (FSDP ranks must run the same forwards): no cross-rank sum
        local = {"sync_on_compute": False}
        self.acc = nn.ModuleDict({c: MeanMetric(**local) for c in self.categories})
        self.n = nn.ModuleDict({c: SumMetric(**local) for c in self.categories})
        self.overall = MeanMetric(**local)
        self.hist = nn.ModuleDict({l: SumMetric(**local) for l in LETTERS})
        self.loss = MeanMetric(**local)

    def update(self, correct: torch.Tensor, preds: torch.Tensor, categories: list[str], loss: torch.Tensor) -> None:
        self.overall.update(correct)
        for c in set(categories):
            sel = torch.tensor([k == c for k in categories], device=correct.device)
            self.acc[c].update(correct[sel])
            self.n[c].update(sel.sum())
        for i, l in enumerate(LETTERS):
            self.hist[l].update((preds == i).sum())
        self.loss.update(loss)

    def compute(self) -> dict[str, float]:
        out = {"loss": float(self.loss.compute())}
        if not self.overall.update_called:  # free-form data has a loss but no choices to score
            return out
        out["acc"] = float(self.overall.compute())
        for c in self.categories:
            if self.n[c].update_called:
                out[f"acc_{c}"] = float(self.acc[c].compute())
                out[f"n_{c}"] = float(self.n[c].compute())
        total = sum(float(self.hist[l].compute()) for l in LETTERS) or 1.0
        for l in LETTERS:
            out[f"pred_frac_{l}"] = float(self.hist[l].compute()) / total
        return out

    def reset(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset"):
                m.reset()


class MLLMModule(L.LightningModule):
    def __init__(self, model: MLLM, stage: StageConfig, categories: list[str]) -> None:
        super().__init__()
        self.model, self.stage = model, stage
        self.metrics = nn.ModuleDict({"val": MCMetrics(categories), "test": MCMetrics(categories)})
        self.test_predictions: dict[str, dict] = {}
        self._losses: list[float] = []
        self._pending: list[torch.Tensor] = []  # this step's losses, still on the device
        self.strict_loading = False  # checkpoints hold trainable weights only (see on_save_checkpoint)
        self.freeze_report = self.apply_freeze_policy()

    @property
    def train_losses(self) -> list[float]:
        """The training loss of every step so far. Read back from the device in one transfer when asked
        for, not per step: a `float(loss)` each step would make the host wait for the GPU every step."""
        if self._pending:
            self._losses += torch.stack(self._pending).float().cpu().tolist()
            self._pending = []
        return self._losses

    # ---- freeze policy ----------------------------------------------------------------------
    def apply_freeze_policy(self) -> list[str]:
        units = self.model.modules_by_name()
        unknown = [u for u in self.stage.trainable if u not in units]
        if unknown:
            raise UserError(f"stage.trainable names {unknown[0]!r}; allowed: {', '.join(units)}")
        lines = []
        for name, module in units.items():
            train = name in self.stage.trainable
            module.requires_grad_(train)
            n = sum(p.numel() for p in module.parameters())
            lines.append(f"{name:<10} {'trainable' if train else 'frozen':<9} {n:>14,d} parameters")
        return lines

    def configure_model(self) -> None:
        """FSDP2 sharding when the trainer's strategy is `fsdp` (see projlab.training.strategy); else nothing."""
        configure_sharding(self)

    def on_train_epoch_start(self) -> None:
        for name, module in self.model.modules_by_name().items():
            if name not in self.stage.trainable:
                module.eval()  # frozen parts stay deterministic (no dropout)

    # ---- steps ------------------------------------------------------------------------------
    def loss(self, batch: dict) -> torch.Tensor:
        """The training loss of `batch`: token ids, labels, and the images' features or pixels; an elastic
        projector emits the M its step drew (the batch's image tokens were expanded to it)."""
        with self.model.projector.emitting(batch.get("num_visual_tokens", self.model.num_visual_tokens)):
            visual = self.model.encode_images(batch.get("pixel_values"), batch.get("features"))
            return self.model(batch["input_ids"], batch["attention_mask"], visual, labels=batch["labels"]).loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self._pending.append(loss.detach())
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/lr", self.optimizers().param_groups[-1]["lr"], on_step=True, on_epoch=False)  # lr, not the projector's
        return loss

    def _eval_step(self, batch: dict, split: str) -> None:
        items = batch["items"]
        visual = self.model.encode_images(batch.get("pixel_values"), batch.get("features"))
        if "options" not in batch:  # free-form data: teacher-forced loss only
            t = batch["targets"]
            out = self.model(t["input_ids"], t["attention_mask"], visual, labels=t["labels"])
            self.metrics[split].loss.update(out.loss)
            return
        opts = batch["options"]
        preds, seq = choose(self.model, opts, visual, len(items))  # (B,), (S,)
        answers = torch.tensor([LETTERS.index(it.answer) for it in items], device=preds.device)
        correct = (preds == answers).float()
        n_tok = (opts["labels"][:, 1:] != -100).sum(-1).float()
        true_seq = opts["option"] == answers[opts["group"]]
        loss = -(seq[true_seq] / n_tok[true_seq]).mean()
        self.metrics[split].update(correct, preds, [it.category for it in items], loss.detach())
        if split == "test":
            for it, p in zip(items, preds.tolist()):
                self.test_predictions[it.id] = {"pred": LETTERS[p], "answer": it.answer, "category": it.category}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_metrics(self, split: str) -> dict[str, float]:
        values = self.metrics[split].compute()
        # an elastic projector scored at another M than its built one logs under test_m<M>/...
        m = self.model.num_visual_tokens
        tag = split if m == self.model.projector.built_tokens else f"{split}_m{m}"
        for k, v in values.items():
            if not k.startswith("n_"):
                self.log(f"{tag}/{k}", v, sync_dist=False)
        self.metrics[split].reset()
        return values

    def on_validation_epoch_end(self) -> None:
        self.last_val = self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.last_test = self._log_metrics("test")

    # ---- optimiser --------------------------------------------------------------------------
    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            return None  # nothing to train (e.g. the blind control in a projector-only stage)
        s = self.stage
        # foreach, not fused: fused AdamW gained 2-3% of a tiny CPU step, but Lightning's mixed-precision
        # plugin refuses gradient clipping with a fused optimizer
        proj = {id(p) for p in self.model.projector.parameters()}
        groups = [{"params": [p for p in params if id(p) in proj], "lr": s.lr * s.projector_lr_scale},
                  {"params": [p for p in params if id(p) not in proj], "lr": s.lr}]
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups, lr=s.lr, betas=tuple(s.betas), eps=s.eps, weight_decay=s.weight_decay)

        def factor(step: int) -> float:
            if step < s.warmup_steps:
                return (step + 1) / s.warmup_steps
            progress = min(1.0, (step - s.warmup_steps) / max(1, s.max_steps - s.warmup_steps))
            floor = s.min_lr / s.lr
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- checkpoints: trainable weights (and buffers) only ------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # remove_duplicate=False: a frozen weight tied under two names (embeddings / LM head) is dropped twice
        frozen = {
            f"model.{n}" for n, p in self.model.named_parameters(remove_duplicate=False) if not p.requires_grad
        }
        sd = checkpoint.get("state_dict")
        if sd is not None:
            for k in [k for k in sd if k in frozen]:
                del sd[k]
        checkpoint["train_losses"] = self.train_losses

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._losses, self._pending = list(checkpoint.get("train_losses", [])), []
