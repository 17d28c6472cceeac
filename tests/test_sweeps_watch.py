"""A sweep a person can watch and find: the headline grid without a name in its own folder, one line per
arm event off a terminal, each arm a row of TensorBoard's HPARAMS tab, and Hydra's -m syntax through the
grid's executor (real tiny runs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep_helpers import ARM, results


# ---------------------------------------------------------------------------------------------------------
# the headline command without a name (real tiny runs, once for the session)
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def nameless(tmp_path_factory, cache_dir) -> tuple[Path, subprocess.CompletedProcess]:
    """`make sweep PROJECTOR=c_abstractor TOKENS=16,64` with tiny arms and no NAME=: its runs root and output."""
    runs = tmp_path_factory.mktemp("nameless") / "runs"
    proc = subprocess.run([sys.executable, "-m", "projlab.sweeps.grid", "--projectors", "c_abstractor", "--tokens",
                           "16,64", "--", *ARM], env={**os.environ, "RUNS": str(runs)}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return runs, proc


@pytest.mark.slow
def test_a_grid_without_a_name_has_its_own_folder_which_the_report_finds(nameless, tmp_path):
    import pandas as pd

    runs, proc = nameless
    first, last = proc.stdout.splitlines()[0], proc.stdout.strip().splitlines()[-1]
    name = "c_abstractor-m16_64"
    assert first.startswith(f"sweep {name}: 2 arm(s) -> {runs / name}") and first.endswith(f"make figures NAME={name}")
    assert last.startswith("2/2 completed") and last.endswith(f"make figures NAME={name}")
    assert sorted(p.name for p in runs.iterdir()) == [name]  # not runs/default, which make reproduce reports
    assert all(results(runs / name / f"c_abstractor-m{m}-r112-s0-joint")["config"]["sweep"] == name for m in (16, 64))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "01_efficiency_table.py").write_text(
        (Path(__file__).resolve().parents[1] / "analysis" / "01_efficiency_table.py").read_text())
    out = tmp_path / "report"
    report = subprocess.run([sys.executable, "-m", "projlab.analysis.report", "--sweep", name, "--runs", str(runs),
                             "--out", str(out), "--notebooks", str(notebooks)], capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    table = pd.read_csv(out / "tables" / "efficiency.csv")
    assert sorted(table["num_visual_tokens"]) == [16, 64] and set(table["status"]) == {"completed"}


@pytest.mark.slow
def test_a_sweep_whose_output_is_not_a_terminal_prints_a_line_per_arm_event(nameless):
    import re

    runs, proc = nameless
    lines = proc.stdout.splitlines()
    arms = ["c_abstractor-m16-r112-s0-joint", "c_abstractor-m64-r112-s0-joint"]
    events = lines[1:lines.index("")]  # between the sweep's first line and the summary table
    for i, arm in enumerate(arms, 1):
        mine = [ln.removeprefix(f"[{i}/2] {arm} ... ") for ln in events if ln.startswith(f"[{i}/2] {arm} ... ")]
        assert re.fullmatch(r"started \(pid \d+\)", mine[0]) and re.fullmatch(r"completed 0\.\d+ \(\d+ s\)", mine[-1])
        assert all(re.fullmatch(r"step [1-5]/6 \(\d+%\)(, ETA \d+ s)?", ln) for ln in mine[1:-1]), mine
        assert len(mine) <= 2 + 3  # at most a line per quarter between start and end
        progress = json.loads((runs / "c_abstractor-m16_64" / arm / "progress.json").read_text())
        assert (progress["step"], progress["max_steps"], progress["start_step"]) == (6, 6, 0)
    assert len(events) == sum(ln.startswith(("[1/2] ", "[2/2] ")) for ln in events)


@pytest.mark.slow
def test_each_arm_is_a_row_of_tensorboards_hparams_tab_with_its_final_results(nameless):
    from tbparse import SummaryReader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    runs, _ = nameless
    arm = runs / "c_abstractor-m16_64" / "c_abstractor-m64-r112-s0-joint"
    record = results(arm)
    reader = SummaryReader(str(arm / "tb"))
    hparams = dict(zip(reader.hparams["tag"], reader.hparams["value"]))
    assert {k: hparams[k] for k in ("projector", "num_visual_tokens", "resolution", "seed", "stage", "preset")} == {
        "projector": "c_abstractor", "num_visual_tokens": 64, "resolution": 112, "seed": 0, "stage": "joint",
        "preset": "tiny"}
    final = reader.scalars[reader.scalars["tag"].str.startswith("final/")]
    assert set(final["step"]) == {record["efficiency"]["steps"]}
    values = dict(zip(final["tag"], final["value"]))
    assert values["final/accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    for cat, v in record["metrics"]["per_category"].items():
        assert values[f"final/acc_{cat}"] == pytest.approx(v["accuracy"])
    for key in ("step_time_s", "peak_tensor_mb", "peak_rss_mb"):
        assert values[f"final/{key}"] == pytest.approx(record["efficiency"][key])
    # the session declares them as its metrics: the columns of the HPARAMS tab
    events = EventAccumulator(str(arm / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} == set(values)
    assert "_hparams_/session_end_info" in content


@pytest.mark.slow
def test_hydras_multirun_syntax_runs_each_arm_as_its_own_process_and_resumes(runs_dir):
    cmd = [sys.executable, "-m", "projlab.train", "-m", "projector=c_abstractor,resampler",
           "projector.num_visual_tokens=16", *ARM]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    sweep = runs_dir / "c_abstractor_resampler-m16"
    assert first.stdout.startswith(f"sweep {sweep.name}: 2 arm(s) -> {sweep}")
    arms = json.loads((sweep / "sweep.json").read_text())["arms"]
    assert [(a["name"], a["status"]) for a in arms] == [("c_abstractor-m16-r112-s0-joint", "completed"),
                                                        ("resampler-m16-r112-s0-joint", "completed")]
    for arm in arms:  # each arm its own `projlab.train` process, launched once by the grid's executor
        log = (sweep / arm["name"] / "train.log").read_text()
        assert log.count("\n=== ") == 1 and " -m projlab.train " in log and " -m projector=" not in log
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("already done, skipped") == 2
