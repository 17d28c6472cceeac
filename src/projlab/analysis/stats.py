"""Noise and significance: when is a difference between two arms a difference?

Two arms answered the same test questions (ids follow the data seed), so they are compared question by
question: the exact McNemar test on the discordant pairs decides (two-sided, ALPHA), and a paired bootstrap
over questions gives a confidence interval for the difference in accuracy. Seeds are pooled: the unit is
(seed, question), pairing arm A's seed s with arm B's seed s.
"""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd

from projlab.analysis.collect import CATEGORIES, SPATIAL, control_arms

ALPHA = 0.05
N_BOOT = 10_000
# the study's two numeric axes: each is stepped with the other (and the stage) held fixed
AXES = {"num_visual_tokens": "resolution", "resolution": "num_visual_tokens"}


def mean_std(values: pd.Series) -> tuple[float, float, int]:
    """Mean, sample standard deviation (NaN for one value) and count of the non-missing values."""
    v = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    if v.empty:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, int(len(v))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b = pairs only A got right, c = pairs only B got right."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, alpha: float = ALPHA,
                     seed: int = 0) -> tuple[float, float, float]:
    """Difference in accuracy mean(a) - mean(b) of paired 0/1 outcomes and its percentile (1 - alpha) CI,
    resampling pairs with replacement."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError("paired_bootstrap needs two non-empty arrays of equal length")
    diff = a - b
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
    boots = diff[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(diff.mean()), float(lo), float(hi)


def compare_arms(preds: pd.DataFrame, a: str, b: str, categories: tuple[str, ...], alpha: float = ALPHA,
                 a_filter: dict | None = None, b_filter: dict | None = None) -> dict:
    """Compare projector `a` with projector `b` on the questions of `categories`, pairing by (seed, question)."""
    def pick(name: str, extra: dict | None) -> pd.DataFrame:
        sel = (preds["projector"] == name) & preds["category"].isin(categories)
        for key, value in (extra or {}).items():
            sel &= preds[key] == value
        return preds.loc[sel, ["seed", "question", "correct"]].drop_duplicates(["seed", "question"])

    pairs = pick(a, a_filter).merge(pick(b, b_filter), on=["seed", "question"], suffixes=("_a", "_b"))
    ca, cb = pairs["correct_a"].to_numpy(bool), pairs["correct_b"].to_numpy(bool)
    row = {"projector_a": a, "projector_b": b, "categories": "+".join(categories), "n_pairs": len(pairs),
           "seeds": int(pairs["seed"].nunique())}
    if pairs.empty:
        return {**row, "acc_a": math.nan, "acc_b": math.nan, "diff": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "only_a": 0, "only_b": 0, "p_mcnemar": math.nan, "verdict": "no paired questions"}
    only_a, only_b = int((ca & ~cb).sum()), int((~ca & cb).sum())
    diff, lo, hi = paired_bootstrap(ca, cb, alpha=alpha)
    p = mcnemar_exact(only_a, only_b)
    if p < alpha:
        verdict = f"{a} better" if diff > 0 else f"{b} better"
    else:
        verdict = "no detectable difference"
    return {**row, "acc_a": float(ca.mean()), "acc_b": float(cb.mean()), "diff": diff, "ci_low": lo, "ci_high": hi,
            "only_a": only_a, "only_b": only_b, "p_mcnemar": p, "verdict": verdict}


def significance(preds: pd.DataFrame, categories: tuple[str, ...] = SPATIAL, alpha: float = ALPHA) -> pd.DataFrame:
    """Every pair of projectors at the same M (and resolution, stage), and every projector against the blind
    control when the sweep has one: each spatial category alone, then all of them pooled."""
    columns = ["num_visual_tokens", "resolution", "stage", "projector_a", "projector_b", "categories", "n_pairs",
               "seeds", "acc_a", "acc_b", "diff", "ci_low", "ci_high", "only_a", "only_b", "p_mcnemar", "verdict"]
    if preds.empty:
        return pd.DataFrame(columns=columns)
    cats = [c for c in categories if c in set(preds["category"])]
    groups = [(cat,) for cat in cats] + ([tuple(cats)] if len(cats) > 1 else [])
    rows = []
    keys = ["num_visual_tokens", "resolution", "stage"]
    arms = preds[preds["projector"] != "blind"]
    for (m, res, stage), group in arms.groupby(keys, sort=True):
        names = sorted(group["projector"].unique())
        where = dict(num_visual_tokens=m, resolution=res, stage=stage)
        pairs = [(a, b, where, where) for a, b in combinations(names, 2)]
        blind = preds[(preds["projector"] == "blind") & (preds["stage"] == stage)]
        if not blind.empty:  # the blind arm sees no image: any resolution will do, the same one if it exists
            fb = {"stage": stage, **({"resolution": res} if (blind["resolution"] == res).any() else {})}
            pairs += [(a, "blind", where, fb) for a in names]
        for a, b, fa, fb in pairs:
            for cat in groups:
                rows.append({**where, **compare_arms(preds, a, b, cat, alpha, fa, fb)})
    return pd.DataFrame(rows, columns=columns)


def axis_steps(preds: pd.DataFrame, categories: tuple[str, ...] | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """Each projector along each axis of the study: every step between neighbouring values of M (at one
    resolution and stage) and of the resolution (at one M and stage), per category (every category in `preds`
    by default), seeds pooled. `diff` is the larger value's accuracy minus the smaller's; the verdict says
    whether the step rises or falls, and calls it only when the McNemar test rejects at `alpha`."""
    columns = ["projector", "axis", "stage", "fixed", "low", "high", "category", "n_pairs", "seeds", "acc_low",
               "acc_high", "diff", "ci_low", "ci_high", "only_low", "only_high", "p_mcnemar", "verdict"]
    arms = preds[~preds["projector"].isin(control_arms())] if not preds.empty else preds
    present = set(arms["category"])
    known = [c for c in CATEGORIES if c in present] + sorted(present - set(CATEGORIES))
    cats = [c for c in categories if c in present] if categories else known
    rows = []
    for axis, other in AXES.items():
        for (projector, stage, fixed), line in arms.groupby(["projector", "stage", other], sort=True):
            values = sorted(line[axis].unique())
            for low, high in zip(values, values[1:]):
                where = {"stage": stage, other: fixed}
                for cat in cats:
                    r = compare_arms(line, projector, projector, (cat,), alpha, {**where, axis: high},
                                     {**where, axis: low})
                    if not r["n_pairs"]:
                        continue
                    p = r["p_mcnemar"]
                    verdict = ("no detectable difference" if not p < alpha else
                               "rises" if r["diff"] > 0 else "falls")
                    rows.append({"projector": projector, "axis": axis, "stage": stage, "fixed": fixed, "low": low,
                                 "high": high, "category": cat, "n_pairs": r["n_pairs"], "seeds": r["seeds"],
                                 "acc_low": r["acc_b"], "acc_high": r["acc_a"], "diff": r["diff"],
                                 "ci_low": r["ci_low"], "ci_high": r["ci_high"], "only_low": r["only_b"],
                                 "only_high": r["only_a"], "p_mcnemar": p, "verdict": verdict})
    return pd.DataFrame(rows, columns=columns)
