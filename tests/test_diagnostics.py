"""Locality diagnostics: the kNN overlap on known maps, the output grid a token count is compared on, and the
diagnostics of a tiny run in results.json and the locality table."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from conftest import TINY_RUN
from projlab.analysis.collect import collect_runs
from projlab.analysis.tables import locality_table
from projlab.evaluation.locality import K, knn_chance, knn_overlap, output_grid, pooled_inputs


def test_knn_overlap_is_one_for_a_map_that_keeps_cosine_similarity():
    g = torch.Generator().manual_seed(0)
    before = torch.randn(4, 64, 32, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    assert knn_overlap(before, 3.0 * before @ rotation) == pytest.approx(1.0)
    assert knn_overlap(before, before) == pytest.approx(1.0)


def test_knn_overlap_of_a_random_permutation_is_near_chance():
    g = torch.Generator().manual_seed(1)
    before = torch.randn(16, 144, 32, generator=g)
    after = before[:, torch.randperm(144, generator=g)]
    chance = knn_chance(144)
    assert chance == pytest.approx(K / 143)
    assert abs(knn_overlap(before, after) - chance) < 0.02  # measured: 0.0351 against chance 0.0350


def test_knn_is_undefined_for_one_token_and_uses_every_other_token_below_k():
    x = torch.randn(2, 1, 8)
    assert knn_overlap(x, x) is None and knn_chance(1) is None
    y = torch.randn(2, 4, 8)  # M - 1 = 3 < K: every other token is a neighbour, so any map keeps them all
    assert knn_overlap(y, torch.randn(2, 4, 8)) == pytest.approx(1.0) and knn_chance(4) == 1.0


@pytest.mark.parametrize("m,grid,expected", [
    (144, (16, 16), (12, 12)), (256, (16, 16), (16, 16)), (32, (16, 16), (4, 8)), (64, (8, 32), (4, 16)),
])
def test_output_grid_keeps_the_patch_grids_aspect(m, grid, expected):
    assert output_grid(m, grid) == expected


def test_pooled_inputs_average_each_cell_and_keep_patches_at_m_equal_n():
    x = torch.arange(16.0).reshape(1, 16, 1)  # a 4x4 grid, row-major
    assert torch.equal(pooled_inputs(x, (4, 4), 16), x)
    cells = pooled_inputs(x, (4, 4), 4).flatten().tolist()
    assert cells == [(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4, (8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]


@pytest.mark.slow
def test_a_tiny_run_records_its_diagnostics_and_the_table_reads_them(tmp_path, cache_dir):
    # a learned-query projector at an M with no square grid: compared on the 4 x 8 pooled grid
    root = tmp_path / "runs"
    env = {**os.environ, "RUNS": str(root), "PROJLAB_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "projlab.train", *TINY_RUN, "projector=resampler",
                           "projector.num_visual_tokens=32", "projector.depth=1", "sweep=loc"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (root / "loc").iterdir()
    loc = json.loads((run / "results.json").read_text())["metrics"]["locality"]
    assert set(loc) == {"norm_ratio", "vision_norm", "text_norm", "knn_overlap", "knn_chance", "knn_k", "images"}
    assert all(math.isfinite(v) for v in loc.values())
    assert loc["norm_ratio"] > 0 and loc["norm_ratio"] == pytest.approx(loc["vision_norm"] / loc["text_norm"])
    assert 0.0 <= loc["knn_overlap"] <= 1.0 and loc["knn_k"] == K and loc["knn_chance"] == pytest.approx(K / 31)
    assert loc["images"] == 16  # eval.batch_size of TINY_RUN: the test split's first batch
    table = locality_table(collect_runs(root, "loc"))
    (row,) = table.data.to_dict("records")
    assert row["projector"] == "resampler" and row["num_visual_tokens"] == 32
    assert row["norm_ratio"] == loc["norm_ratio"] and row["knn_overlap"] == loc["knn_overlap"]
