"""Test-wide settings: offline hubs, a shared preset/feature cache per session, and a random tiny tower
(its contrastive pre-training is tested on its own, in test_tower_pretraining.py)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("PROJLAB_TINY_PRETRAIN_STEPS", "0")

# The smallest real arm: seconds, not minutes. Tests add their own projector/sweep/run overrides.
TINY_RUN = [
    "stage.max_steps=6", "stage.warmup_steps=2", "stage.batch_size=8", "data.train=16", "data.val=4",
    "data.test=8", "eval.val_every_steps=3", "eval.batch_size=16", "trainer.checkpoint_every_steps=3",
    "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["PROJLAB_CACHE"] = str(path)
    return path


@pytest.fixture
def runs_dir(tmp_path, cache_dir, monkeypatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv("RUNS", str(path))
    return path


def python() -> str:
    return sys.executable
