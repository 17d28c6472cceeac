# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Calibration of the instrument
# The calibration arms (`make calibrate`) live in their own sweep, `<runs>/calibration/`. They say what the
# benchmark can tell apart at all: the blind control (no image) should sit at chance, the scrambled control
# (the best arm on images whose layout cells are permuted) should keep counting and attribute and lose the
# spatial tasks. Read the same way as any sweep: per-category table with the "ignores image" flag, and paired
# tests against the blind control.
# Nothing is drawn when the calibration sweep has not been run.

# %% tags=["parameters"]
runs_root = "../runs"  # the runs root (env RUNS of make sweep)
sweep = "default"  # the sweep of the other notebooks (unused here: calibration has its own folder)
out_dir = "../reports/default"  # tables/ are written under it

# %%
import json
from pathlib import Path

from IPython.display import Markdown, display

from projlab.analysis.collect import collect_predictions, collect_runs
from projlab.analysis.render import publish
from projlab.analysis.stats import significance
from projlab.analysis.tables import significance_table, spatial_table

CALIBRATION = "calibration"
tables_dir = Path(out_dir) / "tables"
calib_dir = Path(runs_root) / CALIBRATION
runs = collect_runs(runs_root, CALIBRATION)
if runs.empty:
    print(f"no calibration runs under {calib_dir} (make calibrate): nothing to report")
else:
    print(f"{len(runs)} calibration run(s):", runs["status"].value_counts().to_dict())

# %%
summary = calib_dir / "calibration.json"
if summary.is_file():
    print(f"{summary}, as written by make calibrate:")
    print(json.dumps(json.loads(summary.read_text()), indent=1)[:4000])

# %%
if not runs.empty:
    table = spatial_table(runs, name="calibration_spatial")
    display(Markdown(publish(table, tables_dir)))

# %%
if not runs.empty:
    sig = significance_table(significance(collect_predictions(runs_root, CALIBRATION)), name="calibration_significance")
    display(Markdown(publish(sig, tables_dir)))
