"""The elastic C-Abstractor: one set of weights serving every M of its token set, the per-step draw of M
(a function of seed and step: resume is exact), a tiny run scored at every M (the test and `make eval`), and
the analysis that sets its curve beside the separately trained arms."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tbparse import SummaryReader

from conftest import TINY_RUN
from projlab.analysis.collect import collect_runs, token_points
from projlab.analysis.elastic import elastic_table
from projlab.analysis.figures import accuracy_vs_tokens
from projlab.analysis.tables import locality_table
from projlab.config import load_config
from projlab.errors import UserError
from projlab.projectors import build_projector
from projlab.sweeps.grid import GridSpec, expand
from projlab.training.sampler import StepSampler
from projlab.training.token_draw import drawn_tokens

VD, LD, GRID = 32, 48, (16, 16)
SET = (16, 64, 144)


def test_one_set_of_weights_serves_every_m_of_its_set():
    torch.manual_seed(0)
    proj = build_projector("c_abstractor_elastic", {"depth": 1, "token_set": [64, 16, 144]}, VD, LD, GRID)
    assert proj.token_set == SET and proj.num_visual_tokens == proj.built_tokens == 144
    x = torch.randn(2, 256, VD)
    for m in SET:
        with proj.emitting(m):
            y = proj(x)
            assert proj.num_visual_tokens == m and y.shape == (2, m, LD)
        y.sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in proj.parameters())
        proj.zero_grad()
    assert proj.num_visual_tokens == 144 and proj(x).shape == (2, 144, LD)
    with pytest.raises(ValueError, match="36"):
        with proj.emitting(36):
            pass
    # Honeybee's network unchanged: c_abstractor's weights load into it and give the same tokens at their M
    plain = build_projector("c_abstractor", {"depth": 1, "num_visual_tokens": 64}, VD, LD, GRID)
    proj.load_state_dict(plain.state_dict())
    with proj.emitting(64):
        assert torch.equal(proj(x), plain(x))


@pytest.mark.parametrize("knobs,needles", [
    ({"token_set": [16, 50]}, ["token_set", "50", "perfect square", "144"]),
    ({"token_set": [16, 289], "num_visual_tokens": 16}, ["289", "16x16"]),
    ({"token_set": [16, 64], "num_visual_tokens": 144}, ["num_visual_tokens=144", "[16, 64]"]),
])
def test_bad_token_sets_are_one_line_errors(knobs, needles):
    with pytest.raises(UserError) as err:
        build_projector("c_abstractor_elastic", knobs, VD, LD, GRID)
    assert "\n" not in str(err.value) and all(n in str(err.value) for n in needles), str(err.value)


def test_a_bad_token_set_is_refused_when_the_config_is_composed(cache_dir):
    with pytest.raises(UserError, match="token_set"):
        load_config(["projector=c_abstractor_elastic", "projector.token_set=[16,50]"])
    with pytest.raises(UserError, match="projector.token_set"):
        load_config(["projector=c_abstractor_elastic", "projector.token_set=[16,0]"])


def _steps(sampler: StepSampler, batch: int) -> list[list[tuple[int, int]]]:
    pairs = list(sampler)
    return [pairs[i:i + batch] for i in range(0, len(pairs), batch)]


def test_each_step_draws_one_m_from_seed_and_step_so_a_resume_draws_the_same():
    steps = _steps(StepSampler(40, 4, seed=3, total_steps=30, token_set=SET), 4)
    per_step = [{m for _, m in s} for s in steps]
    assert all(len(ms) == 1 for ms in per_step)  # one M per batch: it stays rectangular
    drawn = [ms.pop() for ms in per_step]
    assert set(drawn) == set(SET)  # 30 steps reach every M
    assert drawn == [drawn_tokens(SET, 3, step) for step in range(30)]
    plain = list(StepSampler(40, 4, seed=3, total_steps=30))
    assert [i for s in steps for i, _ in s] == plain  # the data order is the plain sampler's
    for start in (1, 7, 29):  # a resumed sampler continues with the same indices and the same draws
        resumed = _steps(StepSampler(40, 4, seed=3, total_steps=30, start_step=start, token_set=SET), 4)
        assert resumed == steps[start:]
    ranks = [_steps(StepSampler(64, 4, seed=1, total_steps=8, rank=r, world_size=2, token_set=SET), 4)
             for r in (0, 1)]
    assert [s[0][1] for s in ranks[0]] == [s[0][1] for s in ranks[1]]  # every rank the same M
    other = [drawn_tokens(SET, 4, step) for step in range(30)]
    assert other != drawn  # another seed, another sequence
    assert list(StepSampler(40, 4, seed=3, total_steps=5, token_set=(16,))) == plain[:20]  # one M: plain indices


def test_a_sweep_leaves_the_elastic_projector_at_its_own_set():
    spec = GridSpec(name="g", projectors=["c_abstractor", "c_abstractor_elastic"], tokens=[16, 64], res=[112],
                    seeds=[0])
    arms = expand(spec)
    assert [a.projector for a in arms] == ["c_abstractor", "c_abstractor", "c_abstractor_elastic"]
    assert not any("num_visual_tokens" in o for o in arms[-1].overrides)


# ---- a tiny run -------------------------------------------------------------------------------------
ARM = "c_abstractor_elastic-m144-r112-s0-joint"


def _train(env: dict, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "projlab.train", *TINY_RUN, "projector=c_abstractor_elastic",
                           "projector.depth=1", *overrides], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def elastic(tmp_path_factory, cache_dir) -> tuple[Path, dict]:
    """(runs root, its env) with one uninterrupted tiny elastic run in sweep `straight`."""
    root = tmp_path_factory.mktemp("elastic") / "runs"
    env = {**os.environ, "RUNS": str(root), "PROJLAB_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    proc = _train(env, "sweep=straight")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, env


def _results(root: Path, sweep: str) -> dict:
    return json.loads((root / sweep / ARM / "results.json").read_text())


def _scalars(root: Path, sweep: str, tag: str) -> list[float]:
    df = SummaryReader(str(root / sweep / ARM / "tb")).scalars
    df = df[df.tag == tag].drop_duplicates("step", keep="last")  # a resumed run logs its restart step again
    return df.sort_values("step").value.tolist()


@pytest.mark.slow
def test_an_elastic_run_trains_on_drawn_ms_and_is_tested_at_every_m(elastic):
    root, _ = elastic
    r = _results(root, "straight")
    assert r["status"] == "completed"
    assert r["config"]["token_set"] == list(SET) and r["config"]["num_visual_tokens"] == 144
    m = r["metrics"]
    assert set(m["by_tokens"]) == {"16", "64", "144"}
    assert m["by_tokens"]["144"]["accuracy"] == m["accuracy"] and m["by_tokens"]["144"]["locality"] == m["locality"]
    for scores in m["by_tokens"].values():
        assert scores["n"] == m["n"] and 0 <= scores["accuracy"] <= 1
        assert set(scores["per_category"]) == set(m["per_category"])
        assert 0 <= scores["locality"]["knn_overlap"] <= 1
    # the LLM's sequence follows M: the same question is longer by exactly the extra image tokens
    cost = r["efficiency"]["by_tokens"]
    assert [cost[str(k)]["llm_seq_len"] - k for k in SET] == [r["efficiency"]["llm_seq_len"] - 144] * 3
    assert cost["16"]["llm_flops"] < cost["64"]["llm_flops"] < cost["144"]["llm_flops"]
    # each step ran at the M its (seed, step) drew: visual tokens per second = batch * M / step time
    rate, times = _scalars(root, "straight", "perf/visual_tokens_per_s"), _scalars(root, "straight", "perf/step_time_s")
    ran = [round(v * t / 8) for v, t in zip(rate, times)]  # TINY_RUN: batch 8
    assert ran == [drawn_tokens(SET, 0, step) for step in range(6)] and len(set(ran)) > 1
    assert len(_scalars(root, "straight", "test_m16/acc")) == 1  # each M's test logged under its own tag


@pytest.mark.slow
def test_make_eval_scores_an_elastic_run_at_every_m(elastic):
    root, env = elastic
    run = root / "straight" / ARM
    proc = subprocess.run([sys.executable, "-m", "projlab.evaluation.evaluate", "--run", str(run), "--bench",
                           "spatial"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = _results(root, "straight")
    scored = r["metrics"]["benchmarks"]["spatial"]
    assert set(scored["by_tokens"]) == {"16", "64", "144"}
    for k, scores in scored["by_tokens"].items():  # in float32 here, bf16 autocast where it trained
        trained = r["metrics"]["by_tokens"][k]
        assert scores["n"] == trained["n"] and scores["loss"] == pytest.approx(trained["loss"], rel=0.01)
    assert scored["accuracy"] == scored["by_tokens"]["144"]["accuracy"]


@pytest.mark.slow
def test_a_resumed_elastic_run_draws_and_scores_what_the_straight_run_did(elastic):
    root, env = elastic
    assert _train(env, "sweep=resumed", "fail_at_step=4").returncode != 0
    proc = _train(env, "sweep=resumed")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed, straight = _results(root, "resumed"), _results(root, "straight")
    assert resumed["efficiency"]["resumed_from_step"] == 3
    assert _scalars(root, "resumed", "train/loss") == pytest.approx(_scalars(root, "straight", "train/loss"), abs=1e-5)
    for k in ("16", "64", "144"):
        assert resumed["metrics"]["by_tokens"][k]["per_category"] == straight["metrics"]["by_tokens"][k]["per_category"]


# ---- analysis ---------------------------------------------------------------------------------------
def _write(root: Path, arm: str, projector: str, m: int, seed: int, acc: float, by_tokens: dict | None = None):
    metrics = {"accuracy": acc, "n": 100, "per_category": {"counting": {"accuracy": acc, "n": 100}},
               "locality": {"norm_ratio": 0.5, "knn_overlap": 0.4, "knn_chance": 0.1}}
    if by_tokens:
        metrics["by_tokens"] = {str(k): {"accuracy": a, "n": 100, "per_category": {"counting": {"accuracy": a, "n": 100}},
                                         "locality": {"norm_ratio": 0.5, "knn_overlap": a, "knn_chance": 0.1}}
                                for k, a in by_tokens.items()}
    config = {"projector": projector, "num_visual_tokens": m, "resolution": 112, "seed": seed, "stage": "joint"}
    (root / "s" / arm).mkdir(parents=True)
    (root / "s" / arm / "results.json").write_text(json.dumps({"status": "completed", "config": config,
                                                               "metrics": metrics}))


def test_the_analysis_sets_the_elastic_curve_beside_the_separate_arms(tmp_path):
    root = tmp_path / "runs"
    for seed, (a16, a64) in enumerate([(0.50, 0.70), (0.60, 0.80)]):
        _write(root, f"c_abstractor-m16-r112-s{seed}-joint", "c_abstractor", 16, seed, a16)
        _write(root, f"c_abstractor-m64-r112-s{seed}-joint", "c_abstractor", 64, seed, a64)
    for seed, curve in enumerate([{16: 0.52, 64: 0.60, 144: 0.9}, {16: 0.58, 64: 0.62, 144: 0.9}]):
        _write(root, f"c_abstractor_elastic-m144-r112-s{seed}-joint", "c_abstractor_elastic", 144, seed, 0.9, curve)
    runs = collect_runs(root, "s")
    points = token_points(runs)
    assert len(points) == 4 + 2 * 3 and points["elastic"].sum() == 6
    table = elastic_table(runs).data.set_index("num_visual_tokens")
    assert table.loc[16, "separate"] == "c_abstractor" and table.loc[16, "accuracy"] == pytest.approx(0.55)
    assert table.loc[16, "verdict"] == "within spread"  # 0.55 vs 0.55
    assert table.loc[64, "verdict"] == "below"  # 0.61 vs 0.75, seed std 0.07
    assert table.loc[144, "verdict"] == "—" and pd_isna(table.loc[144, "separate"])  # nothing trained at 144 alone
    loc = locality_table(runs).data
    elastic_rows = loc[loc["projector"] == "c_abstractor_elastic (elastic)"]
    assert sorted(elastic_rows["num_visual_tokens"]) == [16, 64, 144]
    assert elastic_rows.set_index("num_visual_tokens").loc[64, "knn_overlap"] == pytest.approx(0.61)
    paths = accuracy_vs_tokens(runs, tmp_path / "fig")
    assert paths and all(p.stat().st_size > 1000 for p in paths)


def pd_isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))
