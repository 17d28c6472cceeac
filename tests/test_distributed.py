"""Distributed training on 2 CPU processes (gloo): FSDP2 through ModelParallelStrategy, and DDP.

Each run is a subprocess of `python -m projlab.train`, as a user or a sweep runs it (Lightning relaunches the
same command line for rank 1, which must not be pytest's). The FSDP checkpoint is then scored again in this
single process and must give the metrics the sharded run reported.
"""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN, python
from lightning.pytorch.strategies import DDPStrategy

from projlab import build
from projlab.config import load_config
from projlab.data.spatial import CATEGORIES
from projlab.errors import UserError
from projlab.evaluation.checkpoint_eval import evaluate_checkpoint
from projlab.results import read_results
from projlab.training.strategy import FSDP2Strategy, build_strategy

TWO_CPU = ["trainer.devices=2", "trainer.accelerator=cpu", "projector=c_abstractor", "projector.num_visual_tokens=16"]


@pytest.fixture(scope="module")
def tiny_model(cache_dir):
    return build.model(load_config([]))


def test_trainer_configs_build_their_strategies(tiny_model):
    cfg = load_config(["trainer=fsdp", "trainer.devices=2", "trainer.num_nodes=3"])
    strategy, world = build_strategy(cfg.trainer, tiny_model)
    assert isinstance(strategy, FSDP2Strategy) and world == 6
    assert strategy._data_parallel_size == 6 and strategy._tensor_parallel_size == 1
    assert strategy.mixed_precision == "bf16" and not strategy._save_distributed_checkpoint
    cfg = load_config(["trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu"])
    strategy, world = build_strategy(cfg.trainer, tiny_model)
    assert isinstance(strategy, DDPStrategy) and world == 2
    assert build_strategy(load_config([]).trainer, tiny_model) == ("auto", 1)


@pytest.mark.parametrize("overrides, message", [
    (["trainer.strategy=deepspeed"], "trainer.strategy=.deepspeed.: must be one of auto"),
    (["trainer=fsdp", "trainer.mixed_precision=fp8"], "trainer.mixed_precision='fp8'"),
    (["trainer=ddp", "trainer.devices=two"], "trainer.devices='two'"),
])
def test_strategy_mistakes_are_one_line_errors(tiny_model, overrides, message):
    with pytest.raises(UserError, match=message) as err:
        build_strategy(load_config(overrides).trainer, tiny_model)
    assert "\n" not in str(err.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(runs: Path, *overrides: str, completes: bool = True) -> dict:
    """Run one arm on 2 processes; return its results.json."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    cmd = [python(), "-m", "projlab.train", *TWO_CPU, *TINY_RUN, *overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == completes, proc.stdout[-2000:] + proc.stderr[-4000:]
    run_dirs = [p.parent for p in runs.glob("*/*/results.json")]
    assert len(run_dirs) == 1, run_dirs
    results = read_results(run_dirs[0])
    assert results["status"] == ("completed" if completes else "failed"), results.get("error")
    assert results["config"]["world_size"] == 2
    return results


def saved_weights(run_dir: str) -> dict[str, torch.Tensor]:
    return build.load_state_dict(Path(run_dir) / "checkpoints" / "last.ckpt")


def assert_same_metrics(reported: dict, again: dict, loss_rel: float) -> None:
    assert again["n"] == reported["n"]  # each test item counted once, whatever the world size
    assert again["per_category"] == reported["per_category"]
    assert again["accuracy"] == reported["accuracy"]
    assert again["loss"] == pytest.approx(reported["loss"], rel=loss_rel)


@pytest.mark.slow
def test_fsdp_run_resumes_and_its_checkpoint_scores_the_same_in_one_process(runs_dir):
    # fp32 so the two evaluations run the same arithmetic: metrics must match exactly (loss to rounding);
    # activation checkpointing on, since recomputation must not change the numbers either. The run is
    # interrupted after the step-3 checkpoint and resumed, so the optimiser state round-trips through it too.
    fsdp = ["trainer=fsdp", "trainer.mixed_precision=null", "trainer.activation_checkpointing=true", "sweep=fsdp"]
    failed = train(runs_dir, *fsdp, "fail_at_step=4", completes=False)
    assert "injected failure at step 4" in failed["error"]
    results = train(runs_dir, *fsdp)
    assert results["efficiency"]["resumed_from_step"] == 3
    assert results["efficiency"]["steps"] == 6
    ckpt = Path(results["run_dir"]) / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()  # the default: one full checkpoint, gathered on rank 0
    weights = saved_weights(results["run_dir"])
    assert not [k for k in weights if k.startswith("model.vision.")]  # the frozen tower is not saved
    assert any(k.startswith("model.llm.") for k in weights) and any(k.startswith("model.projector.") for k in weights)
    assert all(type(v) is torch.Tensor for v in weights.values())  # gathered, not DTensor shards

    again = evaluate_checkpoint(results["run_dir"], accelerator="cpu")
    assert_same_metrics(results["metrics"], again, loss_rel=1e-5)
    assert again["n"] == len(CATEGORIES) * 8  # data.test=8 per category


@pytest.mark.slow
def test_fsdp_bf16_frozen_llm_sharded_checkpoint(runs_dir):
    # Stage 1: only the projector trains, so frozen and trainable parameters share FSDP units; bf16 compute
    # through FSDP2's policy; the checkpoint as a folder of shards. The single-process score runs in fp32,
    # so the loss is compared within bf16 rounding (measured: 2e-4 relative; allowed: 1e-2).
    results = train(runs_dir, "trainer=fsdp", "trainer.mixed_precision=bf16", "trainer.distributed_checkpoint=true",
                    "stage=stage1", "sweep=fsdp_bf16")
    assert (Path(results["run_dir"]) / "checkpoints" / "last.ckpt").is_dir()
    weights = saved_weights(results["run_dir"])
    assert weights and not [k for k in weights if k.startswith(("model.vision.", "model.llm."))]

    again = evaluate_checkpoint(results["run_dir"], accelerator="cpu")
    assert again["n"] == results["metrics"]["n"] == len(CATEGORIES) * 8
    assert again["loss"] == pytest.approx(results["metrics"]["loss"], rel=0.01)


@pytest.mark.slow
def test_ddp_on_two_processes(runs_dir):
    results = train(runs_dir, "trainer=ddp", "sweep=ddp")
    assert results["efficiency"]["samples"] == 6 * 8 * 2  # each rank read its own slice of the global batch
    assert results["metrics"]["n"] == len(CATEGORIES) * 8
    assert (Path(results["run_dir"]) / "checkpoints" / "last.ckpt").is_file()
