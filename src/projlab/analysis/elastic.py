"""An elastic run's curve against the separately trained arms: at every M of its set, its accuracy beside each
projector trained for that M alone (same resolution and stage), the difference, and whether the difference
lies within the seeds' spread.

"Within the seed spread": |elastic − separate| <= the larger of the two sample standard deviations over seeds
(either side needs two completed seeds for a spread: with one seed on both sides the verdict is "one seed").
"""
from __future__ import annotations

import pandas as pd

from projlab.analysis.collect import control_arms, token_points
from projlab.analysis.render import DASH, Table, missing, pm
from projlab.analysis.stats import mean_std

KEYS = ["num_visual_tokens", "resolution", "stage"]


def _verdict(diff: float, spread: float) -> str:
    if missing(diff):
        return DASH
    if missing(spread):
        return "one seed"
    return "within spread" if abs(diff) <= spread else ("above" if diff > 0 else "below")


def elastic_table(runs: pd.DataFrame, name: str = "elastic_vs_separate") -> Table:
    """One row per (elastic projector, M of its set, separately trained projector at that M)."""
    points = token_points(runs)
    elastic, separate = points[points["elastic"]], points[~points["elastic"]]
    separate = separate[~separate["projector"].isin(control_arms())]
    display, data = [], []
    for (proj, m, res, stage), el in elastic.groupby(["projector", *KEYS], dropna=False, sort=True):
        el_acc, el_sd, el_n = mean_std(el["accuracy"])
        same = separate[(separate["num_visual_tokens"] == m) & (separate["resolution"] == res)
                        & (separate["stage"] == stage)]
        for other, sep in (same.groupby("projector", sort=True) if not same.empty else [(None, same)]):
            acc, sd, n = mean_std(sep["accuracy"])
            diff = el_acc - acc if n else float("nan")
            spread = max((s for s in (el_sd, sd) if not missing(s)), default=float("nan"))
            verdict = _verdict(diff, spread)
            data.append({"elastic": proj, "num_visual_tokens": int(m), "resolution": res, "stage": stage,
                         "accuracy": el_acc, "accuracy_std": el_sd, "seeds": el_n, "separate": other,
                         "separate_accuracy": acc, "separate_accuracy_std": sd, "separate_seeds": n,
                         "difference": diff, "spread": spread, "verdict": verdict})
            display.append({
                "elastic projector": proj, "M": str(int(m)), "resolution (px)": DASH if missing(res) else str(int(res)),
                "elastic (%)": pm(el_acc, el_sd), "seeds": str(el_n), "trained for this M alone": other or DASH,
                "separate (%)": pm(acc, sd) if n else DASH, "separate seeds": str(n),
                "difference (pts)": DASH if missing(diff) else f"{diff * 100:+.1f}",
                "verdict": verdict,
            })
    caption = ("An elastic projector trained once (each step pooled to an M drawn from its set) and scored at every "
               "M of its set, beside the projectors trained for that M alone at the same resolution and stage. "
               "Test accuracy, mean ± sample std over completed seeds; difference = elastic − separate; 'within "
               "spread': the difference is no larger than the larger of the two seed standard deviations.")
    return Table(name, caption, pd.DataFrame(display), pd.DataFrame(data))
