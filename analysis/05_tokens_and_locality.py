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
# # Locality diagnostics, and the elastic curve
# Per arm: the vision/text norm ratio at the LLM input and the kNN overlap of patch features before and after
# the projector (`projlab.evaluation.locality`). Then each elastic run (one set of weights, scored at every M
# of its set) beside the projectors trained for each M alone. This notebook only reads results.json files.

# %% tags=["parameters"]
runs_root = "../runs"  # the runs root (env RUNS of make sweep)
sweep = "default"  # the sweep folder under it
out_dir = "../reports/default"  # tables/ and figures/ are written under it

# %%
from pathlib import Path

from IPython.display import Markdown, display

from projlab.analysis.collect import collect_sweep
from projlab.analysis.elastic import elastic_table
from projlab.analysis.render import publish
from projlab.analysis.tables import locality_table

tables_dir = Path(out_dir) / "tables"
runs = collect_sweep(runs_root, sweep)

# %%
table = locality_table(runs, name="locality")
display(Markdown(publish(table, tables_dir)))

# %%
table = elastic_table(runs, name="elastic_vs_separate")
if table.data.empty:
    print("no elastic run in this sweep (c_abstractor_elastic): nothing to compare")
else:
    display(Markdown(publish(table, tables_dir)))
