"""`make calibrate`: real arms over two seeds tabulated per category (mean, std, n, plateau flags, matched
tests), every figure checked against the runs' own results.json; `--report` tabulates without running."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_RUN
from projlab.analysis.collect import collect_runs
from projlab.analysis.tables import spatial_table
from projlab.data import spatial

pytestmark = pytest.mark.slow

ARMS = {
    "blind": ["projector=blind"],
    "c_abstractor-m4": ["projector=c_abstractor", "projector.num_visual_tokens=4"],
}


def _calibrate(spec: Path, *args: str, runs: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "projlab.sweeps.calibrate", "--spec", str(spec), *args]
    env = {**os.environ, **({"RUNS": str(runs)} if runs else {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _spec(tmp_path: Path, arms: dict, name: str = "cal") -> Path:
    path = tmp_path / f"{name}-{len(arms)}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "seeds": [0, 1], "overrides": [*TINY_RUN, "stage.max_steps=4"], "arms": arms,
        "matched": {"projectors": ["c_abstractor", "resampler"], "tokens": [4]},
    }))
    return path


@pytest.fixture(scope="session")
def calibrated(tmp_path_factory, cache_dir) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("calibrate")
    done = _calibrate(_spec(tmp, ARMS), runs=tmp / "runs")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return tmp, tmp / "runs" / "cal"


def _result(sweep: Path, arm: str) -> dict:
    return json.loads((sweep / arm / "results.json").read_text())


def test_every_cell_is_the_mean_and_std_of_its_runs(calibrated):
    _, sweep = calibrated
    table = json.loads((sweep / "calibration.json").read_text())
    assert list(table["arms"]) == ["blind", "c_abstractor-m4", "resampler-m4"]  # the spec's order
    runs = {"blind": "blind-mall", "c_abstractor-m4": "c_abstractor-m4", "resampler-m4": "resampler-m4"}
    for label, prefix in runs.items():
        row = table["arms"][label]
        assert row["seeds"] == [0, 1] and row["steps"] == 4 and not row["failed"]
        for cat, cell in row["categories"].items():
            per_seed = [_result(sweep, f"{prefix}-r112-s{s}-joint")["metrics"]["per_category"][cat] for s in (0, 1)]
            values = [p["accuracy"] for p in per_seed]
            assert cell["values"] == pytest.approx(values)
            assert cell["mean"] == pytest.approx(statistics.mean(values))
            assert cell["std"] == pytest.approx(statistics.stdev(values))
            assert cell["n"] == per_seed[0]["n"] == 8
    assert table["arms"]["blind"]["plateau_seeds"] == []  # blind is the plateau's reference, never flagged


def test_calibration_prints_the_spatial_tables_figures(calibrated):
    """One computation of a cell: calibration's mean and std are the analysis tables' for the same runs."""
    _, sweep = calibrated
    arms = json.loads((sweep / "calibration.json").read_text())["arms"]
    data = spatial_table(collect_runs(sweep.parent, sweep.name)).data.set_index(["projector", "num_visual_tokens"])
    for label, key in {"c_abstractor-m4": ("c_abstractor", 4), "resampler-m4": ("resampler", 4)}.items():
        assert arms[label]["categories"]
        for cat, cell in arms[label]["categories"].items():
            assert cell["mean"] == data.loc[key, f"acc_{cat}"]
            assert cell["std"] == data.loc[key, f"acc_{cat}_std"]


def test_matched_projectors_get_a_paired_test(calibrated):
    _, sweep = calibrated
    (test,) = json.loads((sweep / "calibration.json").read_text())["matched"]
    assert (test["tokens"], test["projector_a"], test["projector_b"]) == (4, "c_abstractor", "resampler")
    assert 0.0 <= test["p_mcnemar"] <= 1.0 and test["verdict"]
    md = (sweep / "calibration.md").read_text()
    assert "| 4 | c_abstractor | resampler |" in md and "| blind |" in md
    assert json.loads((sweep / "calibration.json").read_text())["axes"] == []  # one M: no step along an axis


def test_the_steps_along_the_axes_are_tabulated():
    from projlab.sweeps.calibrate import markdown

    step = {"projector": "c_abstractor", "axis": "num_visual_tokens", "fixed": 112, "low": 16, "high": 64,
            "category": "adjacent_relation", "acc_low": 0.251, "acc_high": 0.596, "diff": 0.345, "ci_low": 0.304,
            "ci_high": 0.387, "p_mcnemar": 1.1e-48, "verdict": "rises"}
    md = markdown({}, [], [step, {**step, "axis": "resolution", "fixed": 64, "low": 112, "high": 168,
                                  "verdict": "no detectable difference"}])
    assert ("| c_abstractor | M 16 -> 64 at 112 px | adjacent_relation | 25.1 | 59.6 | +34.5 (+30.4, +38.7) "
            "| 1.1e-48 | rises |") in md
    assert "| c_abstractor | 112 -> 168 px at M = 64 | adjacent_relation |" in md


def test_report_lists_unrun_arms_and_runs_nothing(calibrated):
    tmp, sweep = calibrated
    before = sorted(p.name for p in sweep.iterdir())
    spec = _spec(tmp, {**ARMS, "mlp": ["projector=mlp"]})
    done = _calibrate(spec, "--report", runs=tmp / "runs")
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in sweep.iterdir()) == before  # no new run folder
    row = json.loads((sweep / "calibration.json").read_text())["arms"]["mlp"]
    assert row["not_run"] and row["seeds"] == []
    dashes = " - |" * len(spatial.CATEGORIES)  # one cell per category of the default data
    assert f"| mlp |{dashes} 0 (not run) |" in done.stdout


def test_a_missing_spec_is_one_line(tmp_path):
    done = _calibrate(tmp_path / "nope.yaml")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "nope.yaml" in done.stderr


def test_report_names_a_damaged_results_json_and_counts_it_failed(calibrated, tmp_path):
    import shutil

    tmp, sweep = calibrated
    copy = tmp_path / "runs"
    shutil.copytree(sweep.parent, copy)
    damaged = copy / "cal" / "blind-mall-r112-s1-joint" / "results.json"
    damaged.write_text(damaged.read_text()[:100])
    done = _calibrate(_spec(tmp, ARMS), "--report", runs=copy)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"warning: damaged {damaged}" in done.stderr
    row = json.loads((copy / "cal" / "calibration.json").read_text())["arms"]["blind"]
    assert row["seeds"] == [0] and row["failed"] == 1
    assert "| blind |" in done.stdout and "(1 failed)" in done.stdout
