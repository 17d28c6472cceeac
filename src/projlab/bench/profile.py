"""Where the training step's time goes: torch.profiler over a few steps of the recipe's arm, each op's own
(self) time sorted into what it is, and the matmuls' achieved FLOP/s against the roofline.

The buckets say what holds a step below the machine's matmul peak: time outside the matmul kernels
(element-wise work, casts and copies, the optimiser's foreach kernels, the autograd engine, Python between
ops) and matmuls that run below peak on small shapes. Self times are those of the thread that calls the ops,
so they add up to the profiled wall time (an op's intra-op threads work inside it); on a GPU they are the
kernels' own times. The profiler adds its own cost per op: the step's time under it is reported, to be read
beside the unprofiled step.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from projlab.bench.arms import Arm, ArmSpec, train_items
from projlab.bench.presets import Backbones
from projlab.bench.timing import Clock

STEP = "projlab.step"  # the range around each profiled step
# (bucket, test on the op's name), first match wins; "other element-wise and reductions" takes the rest
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Python between ops", (STEP,)),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::_addmm_activation")),
    ("convolution", ("convolution", "aten::conv2d")),
    ("attention (SDPA, softmax)", ("scaled_dot_product", "flash_attention", "efficient_attention", "softmax")),
    ("optimiser and clipping", ("Optimizer.", "_foreach_", "adam")),
    ("autograd engine", ("autograd::", "Backward")),
    ("casts and copies", ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::cat", "aten::stack", "aten::fill_",
                          "aten::zero_", "aten::empty", "aten::resize_", "aten::contiguous")),
    ("norms", ("norm",)),
)
OTHER = "other element-wise and reductions"
TOP = 10  # ops listed per arm


def bucket(name: str) -> str:
    """The bucket of the op called `name` (exact for aten names, substring otherwise)."""
    for label, keys in BUCKETS:
        if any(name == k or (not k.startswith("aten::") and k in name) for k in keys):
            return label
    return OTHER


def profile_arm(arm: Arm, steps: int, warmup: int = 2, peak_gflops: float | None = None) -> dict:
    """Profile `steps` training steps of `arm` after `warmup` unprofiled ones: per bucket and per op (the `TOP`
    dearest) self time per step and share of the profiled time; the matmuls' FLOPs (the profiler's count of
    every forward and backward product) and their achieved rate against `peak_gflops`."""
    clock = Clock(arm.device)
    for _ in range(warmup):
        arm.step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if arm.device.type == "cuda" else [])
    with profile(activities=activities, with_flops=True) as prof:
        t0 = clock()
        for _ in range(steps):
            with record_function(STEP):  # its self time: what runs between the ops
                arm.step()
        wall = clock() - t0
    events = prof.key_averages()
    own = defaultdict(float)  # bucket -> self seconds over the profiled steps
    matmul_flops = 0.0
    ops = []
    for e in events:
        # on a GPU the kernels' own time (the host's runs ahead of it): Python between ops then counts nothing
        seconds = (e.self_device_time_total if arm.device.type == "cuda" else e.self_cpu_time_total) / 1e6
        label = bucket(e.key)
        own[label] += seconds
        matmul_flops += (e.flops or 0) if label == "matmul" else 0
        ops.append((seconds, label if e.key == STEP else e.key, label, e.count, e.flops or 0))
    total = sum(own.values())
    matmul_s = own["matmul"]
    matmul_gflops = matmul_flops / matmul_s / 1e9 if matmul_s else None
    ops.sort(reverse=True)
    return {
        "label": arm.spec.label, "projector": arm.spec.projector, "num_visual_tokens": arm.model.num_visual_tokens,
        "batch_size": arm.batch_size, "seq_len": int(arm.batch["input_ids"].shape[1]), "steps": steps,
        "warmup_steps": warmup,
        "profiled_step_s": wall / steps, "self_time_per_step_s": total / steps,
        "buckets": {k: {"s_per_step": v / steps, "share": v / total} for k, v in
                    sorted(own.items(), key=lambda kv: -kv[1])},
        "matmul": {"gflop_per_step": matmul_flops / steps / 1e9, "achieved_gflops": matmul_gflops,
                   "fraction_of_peak": matmul_gflops / peak_gflops if matmul_gflops and peak_gflops else None},
        "top_ops": [{"op": key, "bucket": label, "ms_per_step": 1e3 * s / steps, "share": s / total,
                     "calls_per_step": count / steps,
                     "achieved_gflops": f / s / 1e9 if f and s and label == "matmul" else None}
                    for s, key, label, count, f in ops[:TOP]],
    }


def profile_recipe(bb: Backbones, tokens: tuple[int, ...], batch_size: int, steps: int, device: torch.device,
                   precision: str, peak_gflops: float | None, per_category: int = 8) -> list[dict]:
    """The preset's recipe projector at each M of `tokens` (its batch: the recipe's), one profile each."""
    source = train_items(bb, per_category)
    out = []
    for m in tokens:
        torch.manual_seed(0)
        arm = Arm(bb, ArmSpec(bb.cfg.projector.name, m, tuple(bb.vision.grid)), batch_size, source, device, precision)
        out.append({"preset": bb.name, **profile_arm(arm, steps, peak_gflops=peak_gflops)})
        del arm
    return out
