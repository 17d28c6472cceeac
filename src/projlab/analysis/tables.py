"""The paper's tables, rebuilt from `collect_runs` / `collect_predictions` frames; numbers only read and averaged.

- `efficiency_table`: performance vs efficiency per arm (projector, M, resolution), mean ± std over seeds.
- `spatial_table`: accuracy per category at matched M, spatial tasks apart from the controls, best marked,
  and an "ignores image" flag against the blind control.
- `significance_table`: paired tests between projectors at the same M on the spatial tasks (`stats`).
- `axis_table`: each projector's steps along M and the resolution, per category, with the same test.
- `locality_table`: the vision/text norm ratio and the kNN overlap before and after the projector per arm.
Every arm appears, whatever its status: a failed arm shows as failed, never dropped.
"""
from __future__ import annotations

import pandas as pd

from projlab.analysis.collect import CONTROLS, PIXEL, SPATIAL, arm_order, categories, token_points
from projlab.analysis.render import DASH, Table, count, missing, num, pm
from projlab.analysis.stats import ALPHA, mean_std
from projlab.evaluation.locality import K as KNN_K

ARM_KEYS = ["projector", "num_visual_tokens", "resolution", "stage"]
ELASTIC_MARK = " (elastic)"  # how a table names an elastic run's point at one M of its set
LOSS_TOLERANCE = 0.02  # relative: final train loss within 2% of (or above) blind's = the image is ignored


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by projector in registry order, then M, resolution, stage."""
    rank = {p: i for i, p in enumerate(arm_order())}
    key = frame.assign(_p=frame["projector"].map(lambda p: rank.get(p, len(rank))))
    by = ["_p", "projector", "num_visual_tokens", "resolution", "stage"]
    return key.sort_values(by, na_position="last").drop(columns="_p").reset_index(drop=True)


def arm_groups(runs: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """One group per arm configuration (the seeds of one projector/M/resolution/stage)."""
    if runs.empty:
        return []
    keyed = runs.assign(**{k: runs[k].astype(object).where(runs[k].notna(), None) for k in ARM_KEYS})
    heads = _order(keyed.drop_duplicates(ARM_KEYS)[ARM_KEYS])
    out = []
    for _, head in heads.iterrows():
        sel = pd.Series(True, index=keyed.index)
        for k in ARM_KEYS:
            sel &= keyed[k].isna() if head[k] is None else keyed[k] == head[k]
        out.append((dict(head), runs[sel.to_numpy()]))
    return out


def status_text(group: pd.DataFrame) -> str:
    """'completed' when every seed completed, else the counts and the first error line."""
    counts = group["status"].fillna("unknown").value_counts()
    if list(counts.index) == ["completed"]:
        return "completed"
    parts = [f"{n} {s}" for s, n in counts.items()]
    errors = group.loc[group["status"] == "failed", "error"].dropna()
    if not errors.empty:
        first = str(errors.iloc[0])
        return ", ".join(parts) + f" ({first[:80]}{'…' if len(first) > 80 else ''})"
    return ", ".join(parts)


def _first(values: pd.Series):
    v = values.dropna()
    return v.iloc[0] if not v.empty else None


def _ints(frame: pd.DataFrame) -> pd.DataFrame:
    """Count columns as nullable integers, so the CSV reads 108896, not 108896.0."""
    for col in ("num_visual_tokens", "resolution", "projector_params", "projector_flops", "steps",
                "questions_per_category", "seeds", "seeds_completed", "seeds_total"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return frame


def _tokens(m) -> str:
    return DASH if missing(m) else str(int(m))


# ---- (a) performance vs efficiency -----------------------------------------------------------
def efficiency_table(runs: pd.DataFrame, name: str = "efficiency") -> Table:
    """Projector, M, resolution, projector params and FLOPs, step time, throughput, memory, accuracy."""
    display, data = [], []
    for key, group in arm_groups(runs):
        done = group[group["status"] == "completed"]
        acc, acc_sd, n_seeds = mean_std(done["accuracy"])
        step, step_sd, _ = mean_std(done["step_time_s"])
        tput, _, _ = mean_std(done["samples_per_s"])
        mem, _, _ = mean_std(done["peak_tensor_mb"])
        steps = sorted({int(s) for s in done["steps"].dropna()})
        params, flops = _first(group["projector_params"]), _first(group["projector_flops"])
        data.append({**key, "projector_params": params, "projector_flops": flops,
                     "steps": steps[0] if len(steps) == 1 else None, "step_time_s": step, "step_time_s_std": step_sd,
                     "samples_per_s": tput, "peak_tensor_mb": mem, "accuracy": acc, "accuracy_std": acc_sd,
                     "seeds_completed": n_seeds, "seeds_total": len(group), "status": status_text(group)})
        display.append({
            "projector": key["projector"] or DASH, "M": _tokens(key["num_visual_tokens"]),
            "resolution (px)": _tokens(key["resolution"]),
            "projector params": count(params), "projector FLOPs/sample": count(flops),
            "steps": DASH if not steps else "–".join(map(str, sorted({steps[0], steps[-1]}))),
            "step time (s)": pm(step, step_sd, scale=1.0, digits=3),
            "throughput (samples/s)": num(tput), "model memory (MB)": num(mem, 4),
            "accuracy (%)": pm(acc, acc_sd), "seeds": f"{n_seeds}/{len(group)}", "status": status_text(group),
        })
    caption = ("Performance vs efficiency per arm. Accuracy on the test split, mean ± sample std over completed seeds "
               "(seeds = completed/launched); step time is each run's median, averaged over seeds; FLOPs are the "
               "projector's forward FLOPs per sample; model memory is the peak of the tensors of one training step "
               "(weights, gradients, optimiser state, activations), not the process's.")
    return Table(name, caption, pd.DataFrame(display), _ints(pd.DataFrame(data)))


# ---- (b) spatial tasks at matched M, with the ignores-image flag (d) --------------------------
def blind_losses(runs: pd.DataFrame) -> pd.DataFrame:
    """The completed blind runs' final train losses: seed, stage, resolution, train_loss_final."""
    blind = runs[(runs["projector"] == "blind") & (runs["status"] == "completed")]
    return blind[["seed", "stage", "resolution", "train_loss_final"]].dropna(subset=["train_loss_final"])


def on_plateau(loss: float, blind_loss: float, tol: float = LOSS_TOLERANCE) -> bool:
    """The plateau rule: a final train loss not below the blind control's by more than `tol` (relative) means
    the run sits on the plateau where the image is not used."""
    return float(loss) >= blind_loss - tol * abs(blind_loss)


def plateau_flags(group: pd.DataFrame, blind: pd.DataFrame, tol: float = LOSS_TOLERANCE) -> list[tuple[int, bool]]:
    """(seed, on the plateau) for each completed run of `group` that has a blind run to compare with (same seed,
    same stage; the same resolution when there is one). `blind`: `blind_losses`' columns."""
    flags = []
    for _, run in group[group["status"] == "completed"].iterrows():
        ref = blind[(blind["seed"] == run["seed"]) & (blind["stage"] == run["stage"])]
        if (ref["resolution"] == run["resolution"]).any():
            ref = ref[ref["resolution"] == run["resolution"]]
        if ref.empty or missing(run["train_loss_final"]):
            continue
        blind_loss = float(ref["train_loss_final"].iloc[0])
        flags.append((int(run["seed"]), on_plateau(run["train_loss_final"], blind_loss, tol)))
    return flags


def ignores_image(group: pd.DataFrame, blind: pd.DataFrame, tol: float = LOSS_TOLERANCE) -> str:
    """Per seed, the plateau rule (`on_plateau`) against the blind control: 'yes (k/n seeds)', 'no' or '—' (no
    blind run to compare with)."""
    flags = [flag for _, flag in plateau_flags(group, blind, tol)]
    if not flags:
        return DASH
    k = sum(flags)
    return "no" if k == 0 else f"yes ({k}/{len(flags)} seeds)"


def spatial_table(runs: pd.DataFrame, name: str = "spatial", tol: float = LOSS_TOLERANCE) -> Table:
    """Accuracy (%) per category per projector, grouped by M; spatial categories first, then the controls, then
    the pixel task."""
    found = categories(runs)
    spatial = [c for c in found if c in SPATIAL]
    controls = [c for c in found if c in CONTROLS]
    pixel = [c for c in found if c in PIXEL]
    other = [c for c in found if c not in SPATIAL and c not in CONTROLS and c not in PIXEL]
    cats = spatial + controls + pixel + other  # the columns, group by group
    blind = blind_losses(runs)
    flag = not blind.empty
    display, data = [], []
    for key, group in sorted(arm_groups(runs), key=lambda kg: (missing(kg[0]["num_visual_tokens"]),
                                                               kg[0]["num_visual_tokens"] or 0)):
        done = group[group["status"] == "completed"]
        row = {"M": _tokens(key["num_visual_tokens"]), "projector": key["projector"] or DASH,
               "resolution (px)": _tokens(key["resolution"])}
        numbers = {**key}
        for c in cats:
            mean, sd, _ = mean_std(done[f"acc_{c}"])
            row[c] = pm(mean, sd)
            numbers.update({f"acc_{c}": mean, f"acc_{c}_std": sd})
        n_q = sorted({int(v) for c in cats for v in done[f"n_{c}"].dropna()})
        questions = DASH if not n_q else "–".join(map(str, sorted({n_q[0], n_q[-1]})))
        failed = len(group) - len(done)
        row["n (questions × seeds)"] = f"{questions} × {len(done)}" + (f" ({failed} not completed)" if failed else "")
        numbers.update(questions_per_category=n_q[0] if len(n_q) == 1 else None, seeds=len(done),
                       status=status_text(group))
        if flag:
            row["ignores image"] = "control" if key["projector"] == "blind" else ignores_image(group, blind, tol)
            numbers["ignores_image"] = row["ignores image"]
        display.append(row)
        data.append(numbers)
    display_df, data_df = pd.DataFrame(display), _ints(pd.DataFrame(data))
    bold = pd.DataFrame(False, index=display_df.index, columns=display_df.columns)
    for m in display_df["M"].unique() if not display_df.empty else []:
        rows = display_df.index[display_df["M"] == m]
        for c in cats:
            values = data_df.loc[rows, f"acc_{c}"].dropna()
            if len(values) >= 2 and values.max() > values.min():
                bold.loc[values.index[values == values.max()], c] = True
    groups = [(name_, cols) for name_, cols in (("spatial", spatial), ("control", controls), ("pixel", pixel),
                                                ("other", other)) if cols]
    caption = ("Accuracy (%) per task category at matched visual-token counts M (grouped by M; M = 0 is the blind "
               "control), mean ± sample std over completed seeds. Spatial tasks need to know where a patch was; "
               "the pixel task (stripes) needs detail a low resolution loses; "
               "the controls (counting, attribute) can be answered from a bag of patches. Bold: best of a column "
               "within one M (ties all bold; not a significance claim, see the significance table).")
    notes = []
    if flag:
        notes.append(f"'ignores image': final train loss not below the blind control's (same seed) by more than "
                     f"{tol:.0%}; such an arm sits on the plateau where the image is not used.")
    return Table(name, caption, display_df, data_df, bold, groups, notes)


# ---- (c) significance ---------------------------------------------------------------------------
def _interval(r) -> str:
    """A paired test's difference in points with its bootstrap interval: "+6.1 [+1.6, +10.8]"."""
    if missing(r["diff"]):
        return DASH
    return f"{r['diff'] * 100:+.1f} [{r['ci_low'] * 100:+.1f}, {r['ci_high'] * 100:+.1f}]"


def significance_table(sig: pd.DataFrame, name: str = "significance", alpha: float = ALPHA) -> Table:
    """`stats.significance` output, formatted."""
    display = [{
        "M": _tokens(r["num_visual_tokens"]), "resolution (px)": _tokens(r["resolution"]),
        "A": r["projector_a"], "B": r["projector_b"], "categories": r["categories"].replace("+", " + "),
        "pairs (seeds)": f"{r['n_pairs']} ({r['seeds']})",
        "acc A (%)": pm(r["acc_a"], None), "acc B (%)": pm(r["acc_b"], None),
        f"A − B (pts) [{1 - alpha:.0%} CI]": _interval(r), "McNemar p": num(r["p_mcnemar"], 2),
        "verdict": r["verdict"],
    } for _, r in sig.iterrows()]
    caption = (f"Paired comparisons on the spatial tasks at the same M (and each projector against the blind "
               f"control): exact two-sided McNemar test on the questions one arm got right and the other wrong, "
               f"pairing by question id within a seed, seeds pooled; alpha = {alpha}. A difference is called only "
               f"when p < {alpha}; the interval is a paired bootstrap over questions (10,000 resamples).")
    return Table(name, caption, pd.DataFrame(display), sig.reset_index(drop=True))


def axis_table(steps: pd.DataFrame, name: str = "axes", alpha: float = ALPHA) -> Table:
    """`stats.axis_steps` output, formatted: does accuracy rise with M, and with the resolution?"""
    display = [{
        "projector": r["projector"], "axis": "M" if r["axis"] == "num_visual_tokens" else "resolution (px)",
        "held": f"{r['fixed']} px" if r["axis"] == "num_visual_tokens" else f"M = {r['fixed']}",
        "step": f"{r['low']} → {r['high']}", "stage": r["stage"], "category": r["category"],
        "pairs (seeds)": f"{r['n_pairs']} ({r['seeds']})", "acc low (%)": pm(r["acc_low"], None),
        "acc high (%)": pm(r["acc_high"], None),
        f"high − low (pts) [{1 - alpha:.0%} CI]": _interval(r), "McNemar p": num(r["p_mcnemar"], 2),
        "verdict": r["verdict"],
    } for _, r in steps.iterrows()]
    caption = (f"Each projector along the study's axes: every step between neighbouring values of M (the "
               f"resolution held) and of the resolution (M held), per category: exact two-sided McNemar test "
               f"on the questions one value got right and the other wrong, pairing by question id within a seed, "
               f"seeds pooled; alpha = {alpha}. The interval is a paired bootstrap over questions.")
    return Table(name, caption, pd.DataFrame(display), steps.reset_index(drop=True))


# ---- (e) locality diagnostics --------------------------------------------------------------------------
def locality_table(runs: pd.DataFrame, name: str = "locality") -> Table:
    """Per arm (an elastic arm once per M of its set): the vision/text norm ratio at the LLM input and the kNN
    overlap of patch features before and after the projector (`projlab.evaluation.locality`), beside accuracy."""
    points = token_points(runs)
    display, data = [], []
    for key, group in arm_groups(points.assign(projector=points["projector"].where(
            ~points["elastic"], points["projector"] + ELASTIC_MARK))):
        ratio, ratio_sd, _ = mean_std(group["norm_ratio"])
        seeds = len(group)
        overlap, overlap_sd, _ = mean_std(group["knn_overlap"])
        chance, _, _ = mean_std(group["knn_chance"])
        acc, acc_sd, _ = mean_std(group["accuracy"])
        data.append({**key, "norm_ratio": ratio, "norm_ratio_std": ratio_sd, "knn_overlap": overlap,
                     "knn_overlap_std": overlap_sd, "knn_chance": chance, "accuracy": acc, "seeds": seeds})
        display.append({
            "projector": key["projector"], "M": _tokens(key["num_visual_tokens"]),
            "resolution (px)": _tokens(key["resolution"]),
            "norm ratio (vision / text)": pm(ratio, ratio_sd, scale=1.0, digits=3),
            f"kNN overlap (k = {KNN_K})": pm(overlap, overlap_sd, scale=1.0, digits=3),
            "chance": num(chance), "accuracy (%)": pm(acc, acc_sd), "seeds": str(seeds),
        })
    caption = (f"Locality diagnostics per arm on the test split's first evaluation batch, mean ± sample std over "
               f"completed seeds. Norm ratio: mean L2 norm of the visual tokens at the LLM input over that of the "
               f"LLM's text-token embeddings in the same sequences. kNN overlap: for each output token, the share of "
               f"its {KNN_K} nearest other output tokens (cosine) that are also the {KNN_K} nearest of its input "
               f"cell (the patch features average-pooled to the output grid; learned queries are set against the "
               f"cells in order); 1 = neighbourhoods kept, chance = k / (M − 1). {ELASTIC_MARK.strip()}: one run "
               f"per seed scored at every M of its set.")
    return Table(name, caption, pd.DataFrame(display), _ints(pd.DataFrame(data)))
