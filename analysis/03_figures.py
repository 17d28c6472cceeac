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
# # Figures
# Accuracy against the number of visual tokens, the efficiency frontier (accuracy against step time), accuracy
# per task category per projector at matched M, and the validation curves logged to TensorBoard. One colour
# per projector in every figure (its class's `colour`, projlab.analysis.figures.palette()); error bars are the
# std over seeds.

# %% tags=["parameters"]
runs_root = "../runs"  # the runs root (env RUNS of make sweep)
sweep = "default"  # the sweep folder under it
out_dir = "../reports/default"  # tables/ and figures/ are written under it

# %%
from pathlib import Path

from IPython.display import Image, display

from projlab.analysis import figures
from projlab.analysis.collect import collect_curves, collect_sweep

figures_dir = Path(out_dir) / "figures"
runs = collect_sweep(runs_root, sweep)
curves = collect_curves(runs_root, sweep)
print(f"{len(runs)} run(s), {len(curves)} logged validation points")


def show(paths):
    for path in paths:
        print(path)
    if not paths:
        print("nothing to draw: no completed run")
    elif paths[0].suffix == ".png":
        display(Image(filename=str(paths[0])))


# %%
show(figures.accuracy_vs_tokens(runs, figures_dir))

# %%
show(figures.efficiency_frontier(runs, figures_dir))

# %%
show(figures.spatial_bars(runs, figures_dir))

# %%
show(figures.training_curves(curves, figures_dir))

# %% [markdown]
# Accuracy per category along each axis the sweep steps (M, the resolution), seed spread as error bars:
# where the fine-detail category should rise with M and the pixel-detail one with the resolution.

# %%
show(figures.accuracy_along_axes(runs, figures_dir))
