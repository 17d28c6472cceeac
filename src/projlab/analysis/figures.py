"""The paper's figures from the collected frames (seaborn; PNG and PDF each).

One colour per projector, the same in every figure (`palette()`: each class's own). Error bars are the sample
std over seeds and appear only where an arm has more than one completed seed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: notebooks and report runs draw to files
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from projlab.analysis.collect import (  # noqa: E402
    CATEGORIES, SPATIAL, arm_order, categories, control_arms, token_points,
)
from projlab.analysis.stats import AXES  # noqa: E402
from projlab.results import SCRAMBLED  # noqa: E402
from projlab.projectors.registry import projector_class  # noqa: E402

DATA_CONTROL_COLOURS = {SCRAMBLED: "#FBAFE4"}  # the projectors' colours are their classes' (`Projector.colour`)
# for a projector whose class names no colour, in table order: seaborn's "dark" palette, then its "muted"
SPARE = ("#001C7F", "#B1400D", "#12711C", "#8C0800", "#591E71", "#592F0D", "#A23582", "#3C3C3C", "#B8850A",
         "#006374", "#4878D0", "#EE854A", "#6ACC64", "#D65F5F", "#956CB4", "#8C613C", "#DC7EC0", "#797979")
OTHER = "#000000"  # a name no arm has
CHANCE = 25.0  # % on the built-in benchmark: four options per question


def palette() -> dict[str, str]:
    """Registry name (and data-side control) -> its colour, in table order: the same in every figure. A
    projector whose class names no colour gets the first spare colour no other arm has."""
    names = arm_order()
    given = {n: projector_class(n).colour for n in names if n not in DATA_CONTROL_COLOURS}
    given.update(DATA_CONTROL_COLOURS)
    spare = iter(c for c in SPARE if c not in set(given.values()))
    return {n: given[n] or next(spare, OTHER) for n in names}


def colour(projector: str) -> str:
    return palette().get(projector, OTHER)


def palette_for(names) -> dict[str, str]:
    colours = palette()
    return {n: colours.get(n, OTHER) for n in names}


def projector_order(names) -> list[str]:
    names, order = set(names), arm_order()
    return [p for p in order if p in names] + sorted(names - set(order))


def m_label(m) -> str:
    return "no image (M = 0)" if m == 0 else f"M = {m}"


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """`<out_dir>/<name>.png` and `.pdf`; closes the figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def per_arm(runs: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Mean, std and seed count of `columns` per (projector, M, resolution, stage), completed runs only."""
    done = runs[runs["status"] == "completed"]
    keys = ["projector", "num_visual_tokens", "resolution", "stage"]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "seeds", *(f"{c}_{s}" for c in columns for s in ("mean", "std"))])
    grouped = done.groupby(keys, dropna=False)
    out = grouped[list(columns)].agg(["mean", "std"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["seeds"] = grouped.size()
    return out.reset_index()


def _errorbar(ax, x, y, xerr, yerr, projector: str, label: str | None, **kw) -> None:
    xerr = xerr if xerr is not None and pd.notna(xerr).any() else None
    yerr = yerr if yerr is not None and pd.notna(yerr).any() else None
    kw.setdefault("marker", "o")
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, color=colour(projector), label=label, capsize=3, **kw)


# ---- accuracy vs number of visual tokens ---------------------------------------------------------
def accuracy_vs_tokens(runs: pd.DataFrame, out_dir: str | Path, name: str = "accuracy_vs_tokens") -> list[Path]:
    """Test accuracy against M per projector, log2 x axis; the blind control (M = 0) as a dashed line. An
    elastic projector's curve (one run per seed, scored at every M of its set: `collect.token_points`) is
    drawn dashed with square markers, beside the separately trained arms."""
    points = token_points(runs)
    arms = per_arm(points, ("accuracy",))
    if arms.empty:
        return []
    elastic = set(points.loc[points["elastic"], "projector"])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for p in projector_order(arms["projector"]):
        a = arms[arms["projector"] == p].sort_values("num_visual_tokens")
        with_tokens = a[a["num_visual_tokens"] > 0]
        if not with_tokens.empty:
            style = {"linestyle": "--", "marker": "s"} if p in elastic else {}
            label = f"{p} (one run per seed, every M)" if p in elastic else p
            _errorbar(ax, with_tokens["num_visual_tokens"], 100 * with_tokens["accuracy_mean"],
                      None, 100 * with_tokens["accuracy_std"], p, label, **style)
        if (a["num_visual_tokens"] == 0).any():
            ax.axhline(100 * a.loc[a["num_visual_tokens"] == 0, "accuracy_mean"].mean(), color=colour(p),
                       linestyle="--", label=f"{p} (no visual tokens)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("visual tokens M (log2 scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs visual tokens")
    ax.legend(fontsize=8)
    return save(fig, out_dir, name)


def accuracy_along_axes(runs: pd.DataFrame, out_dir: str | Path, name: str = "accuracy_along_axes") -> list[Path]:
    """Accuracy per category against M (one line per projector and resolution) and against the resolution (one
    line per projector and M), mean ± std over seeds, chance dotted: one row of panels per axis the sweep
    steps, one panel per category. Nothing when no projector has two values on either axis."""
    done = runs[(runs["status"] == "completed") & (runs["num_visual_tokens"].fillna(0) > 0)]
    done = done[~done["projector"].isin(control_arms())]
    cats = categories(done)
    axes_ = [(axis, other) for axis, other in AXES.items()
             if (done.groupby(["projector", "stage", other])[axis].nunique() > 1).any()]
    stages = done["stage"].nunique() > 1  # name the stage in the legend only where the sweep has several
    if not axes_ or not cats:
        return []
    fig, grid = plt.subplots(len(axes_), len(cats), figsize=(3.0 * len(cats), 2.8 * len(axes_)), sharey=True,
                             squeeze=False)
    for row, (axis, other) in zip(grid, axes_):
        keys = ["projector", "stage", other, axis]
        stats = done.groupby(keys)[[f"acc_{c}" for c in cats]].agg(["mean", "std"])
        for ax, cat in zip(row, cats):
            for (projector, stage, held), line in stats.groupby(level=[0, 1, 2]):
                if len(line) < 2:
                    continue
                x = line.index.get_level_values(axis)
                label = f"{projector}, {held} px" if other == "resolution" else f"{projector}, M={held}"
                _errorbar(ax, x, 100 * line[(f"acc_{cat}", "mean")], None, 100 * line[(f"acc_{cat}", "std")],
                          projector, f"{label} ({stage})" if stages else label)
            ax.axhline(CHANCE, color="grey", linestyle=":", linewidth=1)
            if axis == "num_visual_tokens":
                ax.set_xscale("log", base=2)
            values = sorted(done[axis].unique())
            ax.set_xticks(values, [str(v) for v in values])
            ax.minorticks_off()
            ax.set_title(cat, fontsize=9)
            ax.set_xlabel("visual tokens M" if axis == "num_visual_tokens" else "resolution (px)")
        row[0].set_ylabel("test accuracy (%)")
        row[0].legend(fontsize=7)
    fig.tight_layout()
    return save(fig, out_dir, name)


# ---- the efficiency frontier -----------------------------------------------------------------------
def efficiency_frontier(runs: pd.DataFrame, out_dir: str | Path, name: str = "efficiency_frontier") -> list[Path]:
    """Test accuracy against training step time, each point an arm labelled with its M."""
    arms = per_arm(runs, ("accuracy", "step_time_s")).dropna(subset=["step_time_s_mean"])
    if arms.empty:
        return []
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for p in projector_order(arms["projector"]):
        a = arms[arms["projector"] == p].sort_values("step_time_s_mean")
        _errorbar(ax, a["step_time_s_mean"], 100 * a["accuracy_mean"], a["step_time_s_std"],
                  100 * a["accuracy_std"], p, p, linestyle="none")
        for _, r in a.iterrows():
            ax.annotate(f"M={int(r['num_visual_tokens'])}", (r["step_time_s_mean"], 100 * r["accuracy_mean"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("step time (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("efficiency frontier")
    ax.legend(fontsize=8)
    return save(fig, out_dir, name)


# ---- spatial categories per projector -----------------------------------------------------------------
def category_long(runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs as (projector, num_visual_tokens, seed, category, accuracy %) rows."""
    done = runs[runs["status"] == "completed"]
    cats = categories(done)
    keys = ["projector", "num_visual_tokens", "seed"]
    long = done[[*keys, *(f"acc_{c}" for c in cats)]].melt(id_vars=keys, var_name="category", value_name="accuracy")
    long = long.dropna(subset=["accuracy"])
    long["category"] = long["category"].str[4:]
    long["accuracy"] = 100 * long["accuracy"]
    return long


def spatial_bars(runs: pd.DataFrame, out_dir: str | Path, name: str = "spatial_categories") -> list[Path]:
    """Grouped bars: accuracy per category (spatial first, then controls), one bar per projector, one panel
    per M so that only matched token counts stand side by side."""
    long = category_long(runs)
    if long.empty:
        return []
    cats = [c for c in SPATIAL if c in set(long["category"])] + [c for c in dict.fromkeys(long["category"])
                                                                 if c not in SPATIAL]
    panels = sorted(long["num_visual_tokens"].unique())
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), sharey=True, squeeze=False)
    stats = long.groupby(["num_visual_tokens", "projector", "category"])["accuracy"].agg(["mean", "std"])
    for ax, m in zip(axes.flat, panels):
        names = projector_order(long.loc[long["num_visual_tokens"] == m, "projector"])
        width = 0.8 / len(names)
        for j, p in enumerate(names):
            rows = stats.loc[(m, p)].reindex(cats)
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(cats))]
            yerr = rows["std"] if rows["std"].notna().any() else None
            ax.bar(xs, rows["mean"], width, yerr=yerr, capsize=2, color=colour(p), label=p)
        ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
        ax.set_title(m_label(m))
        # headroom above 100% for the legend, so that it never hides a bar
        ax.set_ylim(0, 135)
        ax.set_yticks(range(0, 101, 20))
        ax.legend(fontsize=7, loc="upper center", ncol=min(2, len(names)), frameon=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (%)")
    for ax in axes[-1, :]:
        ax.set_xlabel("task category (spatial first)")
    fig.tight_layout()
    return save(fig, out_dir, name)


# ---- training curves -----------------------------------------------------------------------------------
def training_curves(curves: pd.DataFrame, out_dir: str | Path, name: str = "training_curves") -> list[Path]:
    """Validation accuracy per category against step, one panel per tag, one colour per projector, one line
    style per M; the band is the std over seeds."""
    if curves.empty:
        return []
    c = curves.copy()
    c["value"] = 100 * c["value"].astype(float)
    c["M"] = c["num_visual_tokens"].map(m_label)
    c["panel"] = c["tag"].str.replace("val/acc_", "", regex=False).str.replace("val/acc", "overall", regex=False)
    panels = [p for p in ("overall", *SPATIAL, *CATEGORIES) if p in set(c["panel"])]
    panels = list(dict.fromkeys(panels + sorted(set(c["panel"]) - set(panels))))
    hue = projector_order(c["projector"])
    styles = [m_label(m) for m in sorted(c["num_visual_tokens"].dropna().unique())]
    g = sns.relplot(data=c, kind="line", x="step", y="value", hue="projector", style="M", style_order=styles,
                    col="panel", col_order=panels, col_wrap=min(3, len(panels)), hue_order=hue,
                    palette=palette_for(hue), errorbar="sd", marker="o", height=3, aspect=1.2)
    g.set_axis_labels("training step", "validation accuracy (%)")
    g.set(ylim=(max(0.0, c["value"].min() - 10), min(100.0, c["value"].max() + 10)))
    g.set_titles("{col_name}")
    return save(g.figure, out_dir, name)
