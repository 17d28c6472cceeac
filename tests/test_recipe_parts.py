"""Parts of the recipe on their own: the step sampler (resume, warm-up on some categories), the precision
rule, the projector's learning-rate scale."""
from __future__ import annotations

import pytest

from projlab.errors import UserError
from projlab.training import precision
from projlab.training.sampler import StepSampler


def test_a_resumed_sampler_continues_the_uninterrupted_one():
    straight = list(StepSampler(50, 4, seed=3, total_steps=30))
    assert len(straight) == 120 and len(set(straight[:48])) == 48  # one permutation per epoch of 50
    for start in (1, 12, 29):
        assert list(StepSampler(50, 4, seed=3, total_steps=30, start_step=start)) == straight[4 * start:]


def test_warm_up_steps_draw_from_their_pool_only_then_from_all_the_data():
    pool = [3, 7, 11, 19, 23]
    s = StepSampler(40, 4, seed=0, total_steps=8, first=pool, first_steps=3)
    drawn = list(s)
    assert set(drawn[:12]) == set(pool) and all(i in pool for i in drawn[:12])
    plain = list(StepSampler(40, 4, seed=0, total_steps=5))
    assert drawn[12:] == plain  # the steps after the warm-up are the plain run's first steps
    for start in (2, 3, 6):  # and a resume lands on the same indices, inside or after the warm-up
        assert list(StepSampler(40, 4, seed=0, total_steps=8, start_step=start, first=pool, first_steps=3)) == drawn[4 * start:]


def test_ranks_read_disjoint_slices_of_the_global_batch():
    a = list(StepSampler(64, 4, seed=1, total_steps=4, rank=0, world_size=2))
    b = list(StepSampler(64, 4, seed=1, total_steps=4, rank=1, world_size=2))
    assert not set(a) & set(b) and len(a) == len(b) == 16


def test_precision_auto_follows_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx2"}))  # AVX-512 emulates bf16
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    assert precision.resolve_precision("32-true", "cpu") == "32-true"
    with pytest.raises(UserError, match="trainer.precision='fp8' is not allowed"):
        precision.resolve_precision("fp8", "cpu")


def test_this_machines_flags_are_read_from_cpuinfo():
    flags = precision.cpu_flags()
    with open("/proc/cpuinfo") as f:
        line = next(ln for ln in f if ln.startswith(("flags", "Features")))
    assert flags == frozenset(line.split(":", 1)[1].split())


def test_the_projector_learning_rate_scale_makes_its_own_group():
    from projlab import build
    from projlab.config import load_config

    cfg = load_config(["projector.num_visual_tokens=16", "stage.projector_lr_scale=4", "data.train=4",
                       "data.val=4", "data.test=4"])
    module = build.module(cfg, build.model(cfg))
    groups = module.configure_optimizers()["optimizer"].param_groups
    proj = {id(p) for p in module.model.projector.parameters()}
    assert [len(g["params"]) for g in groups] == [len(proj), sum(1 for p in module.parameters() if p.requires_grad) - len(proj)]
    assert all(id(p) in proj for p in groups[0]["params"])
    # the schedule's first step (warm-up 1/warmup_steps) scales both groups alike
    assert groups[1]["lr"] == pytest.approx(cfg.stage.lr / cfg.stage.warmup_steps)
    assert groups[0]["lr"] == pytest.approx(4 * groups[1]["lr"])
