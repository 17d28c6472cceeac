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
# # Spatial tasks at matched token counts
# Accuracy per task category and projector, grouped by the number of visual tokens M, the spatial categories
# (object localization, spatial relation) apart from the controls (counting, attribute). The "ignores image"
# column compares each arm's final train loss with the blind control's (same seed). Then the paired tests that
# say whether a difference between two projectors at the same M is a difference at all (alpha = 0.05).

# %% tags=["parameters"]
runs_root = "../runs"  # the runs root (env RUNS of make sweep)
sweep = "default"  # the sweep folder under it
out_dir = "../reports/default"  # tables/ and figures/ are written under it

# %%
from pathlib import Path

from IPython.display import Markdown, display

from projlab.analysis.collect import collect_predictions, collect_sweep
from projlab.analysis.render import publish
from projlab.analysis.stats import axis_steps, significance
from projlab.analysis.tables import axis_table, significance_table, spatial_table

tables_dir = Path(out_dir) / "tables"
runs = collect_sweep(runs_root, sweep)

# %%
table = spatial_table(runs, name="spatial")
display(Markdown(publish(table, tables_dir)))

# %% [markdown]
# ## Significance
# Exact McNemar test on the discordant questions (pairing by question id within a seed, seeds pooled) and a
# paired bootstrap interval for the difference. Only a p-value below 0.05 is reported as a difference.

# %%
predictions = collect_predictions(runs_root, sweep)
print(f"{len(predictions)} per-question answers from {predictions['arm'].nunique()} completed run(s)")
sig = significance_table(significance(predictions), name="significance")
display(Markdown(publish(sig, tables_dir)))

# %% [markdown]
# ## Along the study's axes
# Each projector's steps between neighbouring values of M (resolution held) and of the resolution (M held),
# on every category, with the same paired test: what `make sweep ... TOKENS=64,144,256` asks.

# %%
steps = axis_steps(predictions)
if steps.empty:
    print("this sweep steps neither M nor the resolution of any projector: no axis to test")
else:
    display(Markdown(publish(axis_table(steps, name="axes"), tables_dir)))
