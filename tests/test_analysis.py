"""Analysis: tables and figures rebuilt from real runs, every number checked against the runs' results.json.

A session-wide fixture (trained once, however the tests are scheduled) trains five tiny arms as
`python -m projlab.train` processes (c_abstractor M=16 and the blind control, two seeds each, and one arm
that fails at step 1); the tests then read them back.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_RUN
from projlab.config import group_options
from projlab.analysis.collect import SPATIAL, arm_order, collect_curves, collect_predictions, collect_runs
from projlab.analysis.figures import palette
from projlab.analysis.paper import load_paper_numbers, paper_comparison
from projlab.analysis.render import to_latex, to_markdown, write_table
from projlab.analysis.stats import axis_steps, mcnemar_exact, paired_bootstrap, significance
from projlab.analysis.tables import axis_table, efficiency_table, significance_table, spatial_table

SWEEP = "t"
ARMS = {
    "c_abstractor-m16-r112-s0-joint": ["projector=c_abstractor", "projector.num_visual_tokens=16", "seed=0"],
    "c_abstractor-m16-r112-s1-joint": ["projector=c_abstractor", "projector.num_visual_tokens=16", "seed=1"],
    "blind-mall-r112-s0-joint": ["projector=blind", "seed=0"],
    "blind-mall-r112-s1-joint": ["projector=blind", "seed=1"],
    "linear-mall-r112-s0-joint": ["projector=linear", "seed=0", "fail_at_step=1"],
}
FAILED = "linear-mall-r112-s0-joint"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "REFERENCE.md"


def _launch(overrides: list[str], env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "projlab.train", *TINY_RUN, "stage.max_steps=4", *overrides, f"sweep={SWEEP}"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="session")
def runs(tmp_path_factory, cache_dir) -> Path:
    """Five real arms; the first alone (it writes the shared preset and feature cache), then two at a time."""
    root = tmp_path_factory.mktemp("analysis") / "runs"
    env = {**os.environ, "RUNS": str(root), "PROJLAB_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    names = list(ARMS)
    batches = [names[:1]] + [names[i:i + 2] for i in range(1, len(names), 2)]
    for batch in batches:
        procs = {name: _launch(ARMS[name], env) for name in batch}
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=300)
            assert (proc.returncode != 0) == (name == FAILED), f"{name} exit {proc.returncode}:\n{out[-3000:]}"
    return root


def results(runs: Path, arm: str) -> dict:
    return json.loads((runs / SWEEP / arm / "results.json").read_text())


# ---- collect --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_collect_runs_gives_one_row_per_run_matching_its_results_json(runs):
    df = collect_runs(runs, SWEEP)
    assert sorted(df["arm"]) == sorted(ARMS)
    for _, row in df.iterrows():
        r = results(runs, row["arm"])
        assert row["status"] == r["status"] and row["sweep"] == SWEEP
        assert row["projector"] == r["config"]["projector"] and row["seed"] == r["config"]["seed"]
        assert row["num_visual_tokens"] == r["config"]["num_visual_tokens"]
        if r["status"] != "completed":
            continue
        assert row["accuracy"] == r["metrics"]["accuracy"] and row["n"] == r["metrics"]["n"]
        assert row["step_time_s"] == r["efficiency"]["step_time_s"]
        assert row["projector_params"] == r["efficiency"]["projector_params"]
        assert row["train_loss_final"] == r["metrics"]["train_loss_final"]
        for cat, v in r["metrics"]["per_category"].items():
            assert row[f"acc_{cat}"] == v["accuracy"] and row[f"n_{cat}"] == v["n"]
    failed = df.set_index("arm").loc[FAILED]
    assert failed["status"] == "failed" and "injected failure" in failed["error"]
    assert math.isnan(failed["accuracy"])
    assert (df.set_index("arm").loc["blind-mall-r112-s0-joint", "num_visual_tokens"]) == 0


@pytest.mark.slow
def test_curves_and_predictions_come_from_each_run(runs):
    curves = collect_curves(runs, SWEEP)
    completed = [a for a in ARMS if a != FAILED]
    assert set(curves["arm"]) == set(completed)
    assert {"val/acc", "val/acc_object_localization"} <= set(curves["tag"])
    last = curves[(curves["arm"] == completed[0]) & (curves["tag"] == "val/acc")].sort_values("step")
    assert len(last) >= 1 and 0.0 <= last["value"].iloc[-1] <= 1.0
    preds = collect_predictions(runs, SWEEP)
    for arm in completed:
        mine = preds[preds["arm"] == arm]
        r = results(runs, arm)
        assert len(mine) == r["metrics"]["n"]
        assert mine["correct"].mean() == pytest.approx(r["metrics"]["accuracy"])


def test_a_run_that_died_before_its_config_still_gets_a_row(tmp_path):
    from projlab.results import write_results

    write_results(tmp_path / "s" / "c_abstractor-m16-r112-s3-joint", {"status": "failed", "error": "killed by SIGKILL"})
    write_results(tmp_path / "s" / "blind-mall-r112-s0-joint", {"status": "pruned", "error": None})
    (tmp_path / "s" / "not-a-run").mkdir()
    df = collect_runs(tmp_path).set_index("arm")
    assert list(df.index) == ["blind-mall-r112-s0-joint", "c_abstractor-m16-r112-s3-joint"]
    row = df.loc["c_abstractor-m16-r112-s3-joint"]
    assert (row["sweep"], row["projector"], row["num_visual_tokens"], row["seed"]) == ("s", "c_abstractor", 16, 3)
    assert row["status"] == "failed" and row["error"] == "killed by SIGKILL"
    assert df.loc["blind-mall-r112-s0-joint", "status"] == "pruned"
    assert collect_runs(tmp_path / "nothing").empty


def test_a_scrambled_run_is_read_back_from_its_folder_name_alone(tmp_path):
    """The name format has one owner (`config.run_name` writes it, `parse_run_name` reads it): the scrambled
    control's suffix is read back, and the row is the control's arm, not the projector's."""
    from projlab.config import parse_run_name
    from projlab.results import write_results

    name = "mlp-mall-r112-s2-joint-scrambled"
    assert parse_run_name(name) == {"projector": "mlp", "num_visual_tokens": None, "resolution": 112, "seed": 2,
                                    "stage": "joint", "control": "scrambled"}
    write_results(tmp_path / "s" / name, {"status": "failed", "error": "killed by SIGKILL"})
    row = collect_runs(tmp_path).set_index("arm").loc[name]
    assert (row["projector"], row["resolution"], row["seed"], row["stage"]) == ("scrambled", 112, 2, "joint")


def test_the_control_in_the_record_and_in_the_run_name_is_one_name(runs_dir):
    """`results.data_control` names the data-side control once: the record's `config.control`, the run name's
    suffix and what `parse_run_name` reads back from it all come from it."""
    from projlab.config import load_config, parse_run_name, run_name
    from projlab.results import SCRAMBLED, data_control

    scrambled = load_config(["projector=mlp", "data.scramble=true"])
    assert data_control(scrambled) == SCRAMBLED
    assert run_name(scrambled).endswith(f"-{SCRAMBLED}")
    assert parse_run_name(run_name(scrambled))["control"] == SCRAMBLED
    plain = load_config(["projector=mlp"])
    assert data_control(plain) is None and parse_run_name(run_name(plain))["control"] is None


# ---- tables ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_efficiency_table_cells_recomputed_from_results_json(runs, tmp_path):
    table = efficiency_table(collect_runs(runs, SWEEP))
    data = table.data.set_index("projector")
    assert set(data.index) == {"c_abstractor", "blind", "linear"}
    accs = [results(runs, f"c_abstractor-m16-r112-s{s}-joint")["metrics"]["accuracy"] for s in (0, 1)]
    assert data.loc["c_abstractor", "accuracy"] == pytest.approx(np.mean(accs))
    assert data.loc["c_abstractor", "accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert data.loc["c_abstractor", "seeds_completed"] == 2
    steps = [results(runs, f"c_abstractor-m16-r112-s{s}-joint")["efficiency"]["step_time_s"] for s in (0, 1)]
    assert data.loc["c_abstractor", "step_time_s"] == pytest.approx(np.mean(steps))
    params = results(runs, "c_abstractor-m16-r112-s0-joint")["efficiency"]["projector_params"]
    assert data.loc["c_abstractor", "projector_params"] == params
    assert data.loc["linear", "status"].startswith("1 failed") and data.loc["linear", "seeds_completed"] == 0
    shown = table.display.set_index("projector")
    assert shown.loc["c_abstractor", "accuracy (%)"].startswith(f"{100 * np.mean(accs):.1f}")
    assert shown.loc["linear", "accuracy (%)"] == "—"

    paths = write_table(table, tmp_path)
    assert [p.suffix for p in paths] == [".md", ".tex", ".csv"]
    csv = pd.read_csv(paths[2])
    assert len(csv) == 3 and "failed" in csv.set_index("projector").loc["linear", "status"]
    assert "c\\_abstractor" in paths[1].read_text() and "| linear |" in paths[0].read_text()


@pytest.mark.slow
def test_spatial_table_groups_by_tokens_and_flags_arms_that_ignore_the_image(runs):
    df = collect_runs(runs, SWEEP)
    table = spatial_table(df)
    cols = list(table.display.columns)
    assert cols.index("object_localization") < cols.index("spatial_relation") < cols.index("counting")
    assert dict(table.groups)["spatial"] == ["object_localization", "spatial_relation", "adjacent_relation"]
    assert dict(table.groups)["control"] == ["counting", "attribute"] and dict(table.groups)["pixel"] == ["stripes"]
    data = table.data.set_index("projector")
    for cat in ("object_localization", "spatial_relation", "counting", "attribute"):
        accs = [results(runs, f"c_abstractor-m16-r112-s{s}-joint")["metrics"]["per_category"][cat]["accuracy"]
                for s in (0, 1)]
        assert data.loc["c_abstractor", f"acc_{cat}"] == pytest.approx(np.mean(accs))
    assert table.display["M"].tolist() == ["0", "16", "256"]  # blind, c_abstractor, linear (all patches)
    assert data.loc["blind", "ignores_image"] == "control"
    # the flag, recomputed: c_abstractor's final train loss against blind's, seed by seed
    flags = [results(runs, f"c_abstractor-m16-r112-s{s}-joint")["metrics"]["train_loss_final"]
             >= 0.98 * results(runs, f"blind-mall-r112-s{s}-joint")["metrics"]["train_loss_final"] for s in (0, 1)]
    expected = "no" if not any(flags) else f"yes ({sum(flags)}/2 seeds)"
    assert data.loc["c_abstractor", "ignores_image"] == expected
    assert "not completed" in table.display.set_index("projector").loc["linear", "n (questions × seeds)"]
    md, tex = to_markdown(table), to_latex(table)
    assert "spatial: object_localization" in md and "\\multicolumn{3}{c}{spatial}" in tex


def test_best_of_a_column_is_bold_within_one_token_count():
    runs = pd.DataFrame([
        {"projector": p, "num_visual_tokens": 16, "resolution": 112, "stage": "joint", "seed": 0,
         "status": "completed", "error": None, "train_loss_final": 1.0,
         "acc_object_localization": a, "n_object_localization": 8}
        for p, a in (("resampler", 0.5), ("c_abstractor", 0.75))
    ])
    table = spatial_table(runs)
    assert "**75.0**" in to_markdown(table) and "**50.0**" not in to_markdown(table)
    assert "\\textbf{75.0}" in to_latex(table)


# ---- significance ---------------------------------------------------------------------------------
def test_exact_mcnemar_and_paired_bootstrap():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    a = np.array([1] * 30 + [0] * 10)
    diff, lo, hi = paired_bootstrap(a, a)
    assert diff == lo == hi == 0.0
    diff, lo, hi = paired_bootstrap(np.ones(40), a)
    assert diff == pytest.approx(0.25) and lo < 0.25 < hi and lo > 0


def test_a_difference_is_called_only_when_the_test_says_so():
    def preds(projector, right):
        return [{"projector": projector, "num_visual_tokens": 16, "resolution": 112, "stage": "joint", "seed": 0,
                 "question": f"q{i}", "category": "spatial_relation", "correct": bool(r)} for i, r in enumerate(right)]
    close = pd.DataFrame(preds("c_abstractor", [1] * 12 + [0] * 8) + preds("resampler", [1] * 10 + [0] * 10))
    far = pd.DataFrame(preds("c_abstractor", [1] * 20) + preds("resampler", [0] * 20))
    (row,) = significance(close).to_dict("records")
    assert row["verdict"] == "no detectable difference" and row["p_mcnemar"] == pytest.approx(0.5)
    (row,) = significance(far).to_dict("records")
    assert row["verdict"] == "c_abstractor better" and row["p_mcnemar"] < 0.05 and row["n_pairs"] == 20


def test_axis_steps_test_each_neighbouring_m_and_resolution_with_the_other_held():
    def preds(projector, m, res, seed, right, category="adjacent_relation"):
        return [{"projector": projector, "num_visual_tokens": m, "resolution": res, "stage": "joint", "seed": seed,
                 "question": f"q{i}", "category": category, "correct": bool(r)} for i, r in enumerate(right)]
    rows = (preds("c_abstractor", 16, 112, 0, [0] * 20) + preds("c_abstractor", 16, 112, 1, [0] * 20)
            + preds("c_abstractor", 64, 112, 0, [1] * 20) + preds("c_abstractor", 64, 112, 1, [1] * 20)
            + preds("c_abstractor", 144, 112, 0, [1] * 19 + [0]) + preds("c_abstractor", 144, 112, 1, [1] * 20)
            + preds("c_abstractor", 64, 168, 0, [0] * 20) + preds("c_abstractor", 64, 168, 1, [0] * 20)
            + preds("blind", 0, 112, 0, [1] * 20) + preds("c_abstractor", 16, 112, 0, [1] * 20, "counting"))
    steps = axis_steps(pd.DataFrame(rows))
    got = {(r["axis"], r["fixed"], r["low"], r["high"], r["category"]): r for r in steps.to_dict("records")}
    assert set(got) == {("num_visual_tokens", 112, 16, 64, "adjacent_relation"),
                        ("num_visual_tokens", 112, 64, 144, "adjacent_relation"),
                        ("resolution", 64, 112, 168, "adjacent_relation")}  # blind and unpaired cells left out
    up = got[("num_visual_tokens", 112, 16, 64, "adjacent_relation")]
    assert up["verdict"] == "rises" and up["n_pairs"] == 40 and up["seeds"] == 2 and up["diff"] == 1.0
    assert up["only_high"] == 40 and up["only_low"] == 0 and up["p_mcnemar"] < 0.05
    flat = got[("num_visual_tokens", 112, 64, 144, "adjacent_relation")]
    assert flat["verdict"] == "no detectable difference" and flat["diff"] == pytest.approx(-1 / 40)
    down = got[("resolution", 64, 112, 168, "adjacent_relation")]
    assert down["verdict"] == "falls" and down["acc_low"] == 1.0 and down["acc_high"] == 0.0
    table = axis_table(steps)
    assert len(table.display) == 3 and "seeds pooled" in table.caption


@pytest.mark.slow
def test_significance_pairs_questions_across_the_runs(runs):
    sig = significance(collect_predictions(runs, SWEEP))
    pooled = sig[(sig["projector_a"] == "c_abstractor") & (sig["projector_b"] == "blind")
                 & (sig["categories"] == "+".join(SPATIAL))]
    assert len(pooled) == 1
    n = sum(results(runs, f"c_abstractor-m16-r112-s{s}-joint")["metrics"]["per_category"][c]["n"]
            for s in (0, 1) for c in SPATIAL)
    assert pooled["n_pairs"].iloc[0] == n and pooled["seeds"].iloc[0] == 2
    assert "alpha = 0.05" in significance_table(sig).caption


# ---- figures, paper numbers, the report -----------------------------------------------------------
def test_one_colour_per_registry_name():
    colours = palette()
    assert list(colours) == arm_order()  # tables and figures list the arms in one order
    assert set(group_options("projector")) <= set(colours)  # one config per registered projector
    assert len(set(colours.values())) == len(colours)


def test_paper_numbers_match_reference_and_match_no_tiny_run():
    paper = load_paper_numbers()
    empty = paper[paper["source"].str.startswith("paper:")]
    assert len(empty) > 0 and empty["value"].isna().all() and empty["note"].str.contains("not available offline").all()
    if REFERENCE.is_file():  # every published number equals the one in REFERENCE.md
        rows = {}
        for line in REFERENCE.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0].startswith("Honeybee-"):
                rows[cells[0].split(" ")[0]] = cells[1:]
        header = ["MMB (dev)", "MME", "SEED-I", "LLaVA-w", "MM-Vet", "MMMU", "POPE"]
        for _, r in paper[paper["model"].notna() & (paper["benchmark"] != "ScienceQA")].iterrows():
            ref = rows[r["model"]][header.index(r["benchmark"])]
            assert (math.isnan(r["value"]) and ref == "-") or float(ref) == r["value"], (r["model"], r["benchmark"])
    tiny = pd.DataFrame([{"status": "completed", "projector": "c_abstractor", "num_visual_tokens": 144,
                          "llm": "tiny", "preset": "tiny", "benchmarks": None}])
    table = paper_comparison(paper, tiny)
    assert (table.data["sweep_seeds"] == 0).all()
    no_match = table.display["this sweep"].str.contains("no run with this configuration")
    assert no_match.sum() == paper["value"].notna().sum()


def test_the_axes_figure_draws_each_stepped_axis_and_nothing_without_one(tmp_path):
    from projlab.analysis.figures import accuracy_along_axes

    def run(m, res, seed, acc):
        return {"status": "completed", "projector": "c_abstractor", "num_visual_tokens": m, "resolution": res,
                "seed": seed, "stage": "joint", "acc_adjacent_relation": acc, "acc_stripes": 0.25}
    one_point = pd.DataFrame([run(16, 112, 0, 0.3), run(16, 112, 1, 0.3)])
    assert accuracy_along_axes(one_point, tmp_path) == []
    axes = pd.DataFrame([run(16, 112, s, 0.3) for s in (0, 1)] + [run(64, 112, s, 0.6) for s in (0, 1)]
                        + [run(64, 168, 0, 0.6), {**run(0, 112, 0, 0.25), "projector": "blind"}])
    paths = accuracy_along_axes(axes, tmp_path)
    assert [p.name for p in paths] == ["accuracy_along_axes.png", "accuracy_along_axes.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_report_on_an_empty_runs_root_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "projlab.analysis.report", "--sweep", "x", "--runs",
                           str(tmp_path / "runs")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: no results under {tmp_path / 'runs' / 'x'}; run make sweep first"
    assert proc.stdout == ""


@pytest.mark.slow
def test_report_executes_every_notebook_and_writes_tables_and_figures(runs, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "projlab.analysis.report", "--sweep", SWEEP, "--runs", str(runs),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notebooks = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "analysis").glob("[0-9]*.py"))
    assert sorted(p.stem for p in (out / "notebooks").glob("*.ipynb")) == notebooks
    for name in ("efficiency", "spatial", "significance", "paper_vs_sweep"):
        for ext in ("md", "tex", "csv"):
            path = out / "tables" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 0
            assert str(path) in proc.stdout
    for name in ("accuracy_vs_tokens", "efficiency_frontier", "spatial_categories", "training_curves"):
        for ext in ("png", "pdf"):
            path = out / "figures" / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000
            assert str(path) in proc.stdout
    # the notebooks ran on the injected parameters, not on their defaults
    nb = json.loads((out / "notebooks" / "01_efficiency_table.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and str(runs.resolve()) in "".join(injected[0]["source"])
    csv = pd.read_csv(out / "tables" / "efficiency.csv").set_index("projector")
    accs = [results(runs, f"c_abstractor-m16-r112-s{s}-joint")["metrics"]["accuracy"] for s in (0, 1)]
    assert csv.loc["c_abstractor", "accuracy"] == pytest.approx(np.mean(accs))


def _cut_short(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # a copy interrupted, a disk that filled


@pytest.mark.slow
def test_a_damaged_results_json_is_named_and_counted_failed_by_collect_and_the_report(runs, tmp_path):
    import shutil

    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    damaged = copy / SWEEP / "c_abstractor-m16-r112-s1-joint" / "results.json"
    _cut_short(damaged)
    df = collect_runs(copy, SWEEP).set_index("arm")
    assert sorted(df.index) == sorted(ARMS)  # still one row per run folder
    row = df.loc["c_abstractor-m16-r112-s1-joint"]
    assert row["status"] == "failed" and str(damaged) in row["error"] and row["seed"] == 1
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "projlab.analysis.report", "--sweep", SWEEP, "--runs", str(copy),
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"warning: damaged {damaged}" in proc.stderr and "counted as failed" in proc.stderr
    assert "run make sweep first" not in proc.stdout + proc.stderr
    table = pd.read_csv(out / "tables" / "efficiency.csv").set_index("projector")
    assert table.loc["c_abstractor", "accuracy"] == pytest.approx(results(runs, "c_abstractor-m16-r112-s0-joint")
                                                                  ["metrics"]["accuracy"])  # the other seed only
    assert "failed" in (out / "tables" / "efficiency.md").read_text()
