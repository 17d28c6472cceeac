"""What each projector costs inside a preset: forward+backward of the projector alone, and the full training
step (projector + LLM trainable, the frozen tower's features given, as the tiny recipe runs with cached
features); throughput, peak memory, and each arm's time as a ratio to `linear`'s, measured interleaved.

Every arm of a preset shares the preset's tower and LLM modules (built once); each has its own projector,
optimiser and scheduler, built by `MLLMModule.configure_optimizers` as in a real run.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf

from projlab import build
from projlab.bench.loop import autocast, plain_step, set_train_mode, to_device, trainable
from projlab.bench.presets import Backbones
from projlab.bench.timing import Clock, interleaved, ratios, summary
from projlab.config import load_config
from projlab.data.sources import SpatialSource
from projlab.errors import UserError
from projlab.projectors.accounting import count_parameters, forward_flops, mfu, projector_flops, training_flops
from projlab.projectors.base import Projector
from projlab.projectors.registry import projector_class, table_order
from projlab.schema import projector_knobs
from projlab.training.datamodule import collate_train_examples
from projlab.training.efficiency import llm_forward_flops
from projlab.training.memory import peak_memory

# Every registered projector in table order, the controls and those that run another's modules left out (the
# elastic C-Abstractor: at each M, c_abstractor's network pooled to that M, so its cost is that arm's); the
# arms of Honeybee's study among them are timed at the paper's size too (`Settings.paper_timed`).
PROJECTORS = tuple(n for n in table_order()
                   if not projector_class(n).is_control and projector_class(n).network_of is None)
HONEYBEE = tuple(n for n in PROJECTORS if projector_class(n).paper_arm)
REFERENCE = "linear"


@dataclass(frozen=True)
class ArmSpec:
    projector: str
    tokens: int | None  # None: the projector's own M on `grid` (every patch, M = N; a block projector's N / 4)
    grid: tuple[int, int]

    @property
    def label(self) -> str:
        """`<projector> M=<M>`; the projector's own M as a share of the N patches (`N`, `N/4`)."""
        cls = projector_class(self.projector)
        if self.tokens is not None or not _makes(cls, None, self.grid):
            return f"{self.projector} M={self.tokens}"  # None: a rule with no M of its own, its build says so
        n, m = self.grid[0] * self.grid[1], cls.resolve_num_visual_tokens(None, self.grid)
        return f"{self.projector} M={'N' if m == n else f'N/{n // m}' if m else 0}"


def _makes(cls: type[Projector], tokens: int | None, grid: tuple[int, int]) -> bool:
    """Whether the token rule of `cls` makes M = `tokens` (None: its own M) on `grid`."""
    try:
        cls.resolve_num_visual_tokens(tokens, grid)
    except UserError:
        return False
    return True


def arm_specs(tokens: tuple[int, ...], projectors: tuple[str, ...] = PROJECTORS,
              grid: tuple[int, int] = (16, 16)) -> list[ArmSpec]:
    """Projectors that take no token request once, at their own M (per-patch: M = N); the others at each
    requested M their token rule makes on `grid`, or at their own M where it makes none of them (a block
    projector, M = N / r^2, at r = 2)."""
    grid = tuple(grid)
    specs = []
    for name in projectors:
        cls = projector_class(name)
        ms: list[int | None] = [m for m in tokens if _makes(cls, m, grid)] if cls.takes_token_request else []
        if not ms:  # its own M; where it has none, the requested ones, whose build says why they fail
            ms = [None] if _makes(cls, None, grid) else list(tokens)
        specs += [ArmSpec(name, m, grid) for m in ms]
    return specs


@functools.lru_cache(maxsize=None)
def _composed_knobs(name: str) -> tuple[tuple[str, object], ...]:
    return tuple(projector_knobs(load_config([f"projector={name}"])).items())


def projector_settings(name: str, tokens: int | None) -> dict:
    """The projector's knobs as a run composes them (experiments/projector/<name>.yaml), with M set."""
    knobs = dict(_composed_knobs(name))
    knobs.pop("num_visual_tokens", None)
    if tokens is not None:
        knobs["num_visual_tokens"] = tokens
    return knobs


def arm_config(bb: Backbones, spec: ArmSpec, batch_size: int, **changes) -> DictConfig:
    """The preset's run config for the arm: its projector (knobs as a run composes them), the bench's batch
    size for training and evaluation, and `changes`."""
    cfg = bb.config(spec.projector, projector_settings(spec.projector, spec.tokens),
                    stage={"batch_size": batch_size}, eval={"batch_size": batch_size})
    return OmegaConf.merge(cfg, changes)


def train_items(bb: Backbones, per_category: int) -> SpatialSource:
    d = bb.cfg.data
    return SpatialSource("train", per_category, d.seed)


class Arm:
    """One projector in one preset, ready to time: its MLLM, optimiser, a fixed batch and random features."""

    def __init__(
        self, bb: Backbones, spec: ArmSpec, batch_size: int, source: SpatialSource, device: torch.device,
        precision: str,
    ) -> None:
        self.spec, self.device, self.precision = spec, device, precision
        cfg = arm_config(bb, spec, batch_size)
        self.model = bb.model(cfg).to(device)
        self.module = build.module(cfg, self.model)
        opt = self.module.configure_optimizers()
        self.optimizer, self.scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        self.params = trainable(self.module)
        set_train_mode(self.module)
        m = self.model.num_visual_tokens
        processor = build.text_processor(cfg, bb.llm, m)
        items = [source.items[i % len(source.items)] for i in range(batch_size)]
        batch = collate_train_examples(items, processor)
        g = torch.Generator().manual_seed(0)
        n = self.model.projector.num_patches
        batch["features"] = torch.randn(batch_size, n, bb.vision.hidden_size, generator=g)  # what the cache holds
        self.batch = to_device(batch, device)
        self.grad_out = torch.randn(batch_size, m, bb.llm.hidden_size, generator=g).to(device)
        self.visual = torch.randn(batch_size, m, bb.llm.hidden_size, generator=g).to(device)  # for the LLM alone

    @property
    def batch_size(self) -> int:
        return self.batch["input_ids"].shape[0]

    def projector_call(self) -> None:
        """Forward + backward of the feature norm and projector alone (a fixed random output gradient)."""
        with autocast(self.device, self.precision):
            y = self.model.encode_images(features=self.batch["features"])
        y.backward(self.grad_out.to(y.dtype))
        self.model.projector.zero_grad(set_to_none=True)

    def llm_call(self) -> None:
        """Forward + backward of the LLM alone on the arm's batch, its visual tokens given (fixed, random)."""
        b = self.batch
        with autocast(self.device, self.precision):
            out = self.model(b["input_ids"], b["attention_mask"], self.visual, labels=b["labels"])
        out.loss.backward()
        self.model.llm.zero_grad(set_to_none=True)

    def llm_forward_flops(self) -> int:
        return llm_forward_flops(self.model, self.batch["input_ids"], self.batch["attention_mask"])

    def step(self) -> None:
        plain_step(self.module, self.optimizer, self.scheduler, self.params, self.batch, self.device, self.precision)

    def step_forward_flops(self) -> int:
        b = self.batch
        with autocast(self.device, self.precision):
            return forward_flops(
                lambda: self.model(b["input_ids"], b["attention_mask"], self.model.encode_images(features=b["features"]),
                                   labels=b["labels"])
            )


def _roofline(flops: dict[str, int], seconds: dict[str, float], peak_gflops: float | None) -> dict:
    """Achieved GFLOP/s of each part (3 x its forward FLOPs: backward counted as twice the forward) and the
    fraction of the measured matmul peak of the precision it ran in."""
    achieved = {k: training_flops(flops[k]) / seconds[k] / 1e9 for k in flops}
    return {"achieved_gflops": achieved,
            "fraction_of_peak": {k: v / peak_gflops for k, v in achieved.items()} if peak_gflops else None}


def bench_arms(
    bb: Backbones, specs: list[ArmSpec], batch_size: int, repeats: int, device: torch.device, precision: str,
    peak_tflops: float | None, per_category: int = 8, peak_gflops: float | None = None,
) -> list[dict]:
    """Time every arm of `specs` in preset `bb`; one record per arm. `peak_gflops`: the measured matmul peak
    of `precision` on this machine (`bench.roofline`), which each part's achieved FLOP/s is read against."""
    torch.manual_seed(0)
    source = train_items(bb, per_category)
    arms = {s.label: Arm(bb, s, batch_size, source, device, precision) for s in specs}
    clock = Clock(device)
    memory: dict[str, dict[str, float]] = {}
    for label, arm in arms.items():  # warm-up round (untimed), which also measures peak memory
        with peak_memory(device, arm.model.projector) as proj_mem:
            arm.projector_call()
        with peak_memory(device, arm.module, arm.optimizer) as step_mem:
            arm.step()
        memory[label] = {"projector": proj_mem["mb"], "step": step_mem["mb"]}
    proj_times = interleaved({k: a.projector_call for k, a in arms.items()}, repeats, clock)
    llm_times = interleaved({k: a.llm_call for k, a in arms.items()}, repeats, clock)
    step_times = interleaved({k: a.step for k, a in arms.items()}, repeats, clock)
    ref = next(label for label, a in arms.items() if a.spec.projector == REFERENCE)
    proj_ratio, step_ratio = ratios(proj_times, ref), ratios(step_times, ref)

    records = []
    for label, arm in arms.items():
        step = summary(step_times[label])
        m, b = arm.model.num_visual_tokens, arm.batch_size
        fwd = arm.step_forward_flops()
        achieved = training_flops(fwd) / step["median"]
        parts = {"projector": projector_flops(arm.model.projector) * b, "llm": arm.llm_forward_flops(), "step": fwd}
        medians = {"projector": summary(proj_times[label])["median"], "llm": summary(llm_times[label])["median"],
                   "step": step["median"]}
        records.append({
            "preset": bb.name,
            "projector": arm.spec.projector,
            "label": label,
            "num_visual_tokens": m,
            "num_patches": arm.model.projector.num_patches,
            "batch_size": b,
            "seq_len": int(arm.batch["input_ids"].shape[1]),
            "params": {
                "projector": count_parameters(arm.model.projector),
                "trainable": count_parameters(arm.module, trainable_only=True),
                "total": count_parameters(arm.module),
            },
            "flops": {"projector_forward_per_sample": projector_flops(arm.model.projector),
                      "projector_forward": parts["projector"], "llm_forward": parts["llm"], "step_forward": fwd},
            "roofline": _roofline(parts, medians, peak_gflops),
            "projector_time_s": summary(proj_times[label]),
            "llm_time_s": summary(llm_times[label]),
            "step_time_s": step,
            "samples_per_s": b / step["median"],
            "visual_tokens_per_s": b * m / step["median"],
            "peak_memory_mb": memory[label],
            "ratio_to_linear": {"projector": summary(proj_ratio[label]), "step": summary(step_ratio[label])},
            "achieved_tflops": achieved / 1e12,
            "mfu": mfu(fwd, step["median"], peak_tflops) if peak_tflops else None,
        })
    return records
