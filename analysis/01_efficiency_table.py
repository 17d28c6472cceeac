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
# # Performance vs efficiency
# One row per arm (projector, visual tokens M, resolution): what the projector costs (parameters, FLOPs, step
# time, throughput, memory) and what it scores (test accuracy, mean ± std over seeds). Arms that failed stay in
# the table with their status. Then the paper's published numbers beside this sweep's, where the configuration
# matches. This notebook only reads results.json files and aggregates them.

# %% tags=["parameters"]
runs_root = "../runs"  # the runs root (env RUNS of make sweep)
sweep = "default"  # the sweep folder under it
out_dir = "../reports/default"  # tables/ and figures/ are written under it

# %%
from pathlib import Path

from IPython.display import Markdown, display

from projlab.analysis.collect import collect_sweep
from projlab.analysis.paper import load_paper_numbers, paper_comparison
from projlab.analysis.render import publish
from projlab.analysis.tables import efficiency_table

tables_dir = Path(out_dir) / "tables"
runs = collect_sweep(runs_root, sweep)
print(f"{len(runs)} run(s) under {Path(runs_root) / sweep}:", runs["status"].value_counts().to_dict())

# %%
table = efficiency_table(runs, name="efficiency")
display(Markdown(publish(table, tables_dir)))

# %% [markdown]
# ## The paper beside this sweep
# Published numbers from analysis/paper_numbers.csv (copied from REFERENCE.md). A "this sweep" cell holds a
# number only when a completed run has the same projector, M and LLM and a score on that benchmark from
# `make eval`; the tiny preset matches none, and the cell says so. The paper's projector-ablation and
# spatial-sub-task tables are not available offline: their rows are empty on purpose.

# %%
paper = paper_comparison(load_paper_numbers(), runs, name="paper_vs_sweep")
markdown = publish(paper, tables_dir)
matched = int((paper.data["sweep_seeds"] > 0).sum())
print(f"{matched} of {int(paper.data['value'].notna().sum())} published numbers have a matching configuration here")
display(Markdown(markdown))
