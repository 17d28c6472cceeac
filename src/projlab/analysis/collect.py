"""Read logged runs into tidy DataFrames: the only way analysis sees results.

A run is a folder `<runs_root>/<sweep>/<arm>/` holding a results.json (schema: `projlab.results`); every
such folder gives one row, whatever its status, so a failed arm is reported rather than silently dropped.
Training curves come from the TensorBoard events under `<arm>/tb/`, per-question answers from
`<arm>/predictions_test.json`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

import projlab.projectors  # noqa: F401  (importing the package registers every projector)
from projlab.config import parse_run_name
from projlab.data.spatial import CATEGORIES, PIXEL_CATEGORIES, SPATIAL_CATEGORIES
from projlab.io import read_json
from projlab.projectors.registry import projector_class, table_order
from projlab.results import RESULTS_FILE, SCRAMBLED, read_results

SPATIAL = SPATIAL_CATEGORIES  # the tasks that need to know where a patch was
PIXEL = PIXEL_CATEGORIES  # the tasks that need the pixels a low resolution loses
CONTROLS = tuple(c for c in CATEGORIES if c not in SPATIAL and c not in PIXEL)  # what a bag of patches answers
DATA_CONTROLS = (SCRAMBLED,)  # controls made by the data, not the projector: each is an arm of its own
DEFAULT_TAGS = ("val/acc", *(f"val/acc_{c}" for c in CATEGORIES))

CONFIG_KEYS = ("projector", "num_visual_tokens", "resolution", "seed", "stage", "preset")
EFFICIENCY_KEYS = (
    "steps", "wall_time_s", "step_time_s", "samples_per_s", "visual_tokens_per_s", "peak_tensor_mb", "peak_rss_mb",
    "projector_params", "projector_flops", "params_trainable", "llm_seq_len",
)
LOCALITY_KEYS = ("norm_ratio", "knn_overlap", "knn_chance")  # metrics.locality (projlab.evaluation.locality)
RUN_COLUMNS = (
    "sweep", "arm", "status", "error", *CONFIG_KEYS, "llm", *EFFICIENCY_KEYS, "accuracy", "n", "train_loss_final",
    *LOCALITY_KEYS,
)
RAW_COLUMNS = ("benchmarks", "by_tokens")  # dicts as results.json holds them (None where absent)


def arm_order() -> list[str]:
    """The arms' names in the order tables and figures list them: the registry's projectors, its controls,
    then the data-side controls."""
    return [*table_order(), *DATA_CONTROLS]


def control_arms() -> list[str]:
    """The arms that calibrate the instrument rather than compete: the registry's controls and the data-side
    ones."""
    return [*(n for n in table_order() if projector_class(n).is_control), *DATA_CONTROLS]


def run_dirs(runs_root: str | Path, sweep: str | None = None) -> list[Path]:
    """Every folder holding a results.json, under one sweep or under all of them."""
    root = Path(runs_root)
    pattern = f"{sweep}/*/{RESULTS_FILE}" if sweep else f"*/*/{RESULTS_FILE}"
    return sorted(p.parent for p in root.glob(pattern))


def run_row(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """One flat row from one results.json."""
    config = record.get("config") or {}
    eff = record.get("efficiency") or {}
    metrics = record.get("metrics") or {}
    guess = parse_run_name(run_dir.name)  # a run that died before writing its config still has a name
    row: dict[str, Any] = {
        "sweep": config.get("sweep") or run_dir.parent.name,
        "arm": run_dir.name,
        "status": record.get("status"),
        "error": record.get("error"),
    }
    for key in CONFIG_KEYS:
        row[key] = config.get(key, guess.get(key))
    control = config["control"] if "control" in config else guess.get("control")
    if control:  # a data-side control (the scrambled layout) is its own arm in every table
        row["projector"] = control
    row["llm"] = ((config.get("full") or {}).get("llm") or {}).get("name_or_path")
    row.update({key: eff.get(key) for key in EFFICIENCY_KEYS})
    row.update(accuracy=metrics.get("accuracy"), n=metrics.get("n"), train_loss_final=metrics.get("train_loss_final"))
    row.update({key: (metrics.get("locality") or {}).get(key) for key in LOCALITY_KEYS})
    for cat, values in (metrics.get("per_category") or {}).items():
        row[f"acc_{cat}"] = values.get("accuracy")
        row[f"n_{cat}"] = values.get("n")
    row["benchmarks"] = metrics.get("benchmarks") or None
    row["by_tokens"] = metrics.get("by_tokens") or None
    return row


def _category_order(columns: Iterable[str]) -> list[str]:
    found = [c[4:] for c in columns if c.startswith("acc_")]
    return [c for c in CATEGORIES if c in found] + sorted(c for c in found if c not in CATEGORIES)


def categories(runs: pd.DataFrame) -> list[str]:
    """The categories with a per-category accuracy in `runs`, known ones first in their usual order."""
    return _category_order(runs.columns)


def collect_runs(runs_root: str | Path, sweep: str | None = None) -> pd.DataFrame:
    """One row per run folder with a results.json (any status); columns in RUN_COLUMNS, then acc_<cat>, n_<cat>
    for every category present, then `benchmarks` (the raw dict of `make eval` scores, or None) and
    `by_tokens` (an elastic run's scores at every M of its set, or None: `token_points` spreads them)."""
    rows = [run_row(d, r) for d in run_dirs(runs_root, sweep) if (r := read_results(d)) is not None]
    df = pd.DataFrame(rows, columns=None if rows else [*RUN_COLUMNS, *RAW_COLUMNS])
    for col in RUN_COLUMNS:
        if col not in df:
            df[col] = None
    cats = categories(df)
    ordered = [*RUN_COLUMNS, *(f"{p}_{c}" for c in cats for p in ("acc", "n")), *RAW_COLUMNS]
    df = df[ordered]
    for col in ("num_visual_tokens", "resolution", "seed", "steps", "n", "llm_seq_len",
                "projector_params", "projector_flops", "params_trainable", *(f"n_{c}" for c in cats)):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("wall_time_s", "step_time_s", "samples_per_s", "visual_tokens_per_s", "peak_tensor_mb", "peak_rss_mb",
                "accuracy", "train_loss_final", *LOCALITY_KEYS, *(f"acc_{c}" for c in cats)):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df.sort_values(["sweep", "projector", "num_visual_tokens", "resolution", "seed", "arm"],
                          na_position="last").reset_index(drop=True)


def token_points(runs: pd.DataFrame) -> pd.DataFrame:
    """The completed runs as points of an accuracy-vs-tokens curve: one row per run at its M, and for an elastic
    run (`by_tokens` in its results) one row per M of its set, with that M's accuracy, per-category accuracy and
    locality. Columns: those of `runs` but the raw dicts, and `elastic` (the row comes from a run that serves
    several M with one set of weights)."""
    keep = [c for c in runs.columns if c not in RAW_COLUMNS]
    rows = []
    for _, run in runs[runs["status"] == "completed"].iterrows():
        base = {c: run[c] for c in keep}
        if not isinstance(run.get("by_tokens"), dict):
            rows.append({**base, "elastic": False})
            continue
        for m, scores in run["by_tokens"].items():
            point = {**base, "num_visual_tokens": int(m), "accuracy": scores.get("accuracy"), "n": scores.get("n"),
                     "elastic": True}
            point.update({key: (scores.get("locality") or {}).get(key) for key in LOCALITY_KEYS})
            for cat in categories(runs):
                point[f"acc_{cat}"] = (scores.get("per_category") or {}).get(cat, {}).get("accuracy")
                point[f"n_{cat}"] = (scores.get("per_category") or {}).get(cat, {}).get("n")
            rows.append(point)
    out = pd.DataFrame(rows, columns=[*keep, "elastic"])
    for col in ("accuracy", *LOCALITY_KEYS, *(f"acc_{c}" for c in categories(runs))):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    out["num_visual_tokens"] = pd.to_numeric(out["num_visual_tokens"], errors="coerce").astype("Int64")
    out["elastic"] = out["elastic"].astype(bool)
    return out.reset_index(drop=True)


def collect_sweep(runs_root: str | Path, sweep: str) -> pd.DataFrame:
    """`collect_runs` for one sweep, failing with a clear message where it has no results (the notebooks'
    first step)."""
    runs = collect_runs(runs_root, sweep)
    if runs.empty:
        raise RuntimeError(f"no results under {Path(runs_root) / sweep}; run make sweep first")
    return runs


def collect_curves(
    runs_root: str | Path, sweep: str, tags: Iterable[str] | None = DEFAULT_TAGS
) -> pd.DataFrame:
    """Scalars logged to TensorBoard by every run of `sweep`: columns arm, projector, num_visual_tokens, seed,
    tag, step, value. `tags=None` keeps every tag. A resumed run may log a step twice: the last value wins."""
    from tbparse import SummaryReader  # imports tensorboard: only when curves are asked for

    runs = collect_runs(runs_root, sweep)
    keep = None if tags is None else set(tags)
    frames = []
    for _, run in runs.iterrows():
        tb = Path(runs_root) / sweep / run["arm"] / "tb"
        if not tb.is_dir():
            continue
        with warnings.catch_warnings():  # tbparse 0.0.9 uses pandas' deprecated inplace sort
            warnings.simplefilter("ignore")
            scalars = SummaryReader(str(tb)).scalars
        if scalars.empty:
            continue
        if keep is not None:
            scalars = scalars[scalars["tag"].isin(keep)]
        scalars = scalars.drop_duplicates(["tag", "step"], keep="last")
        frames.append(scalars.assign(
            arm=run["arm"], projector=run["projector"], num_visual_tokens=run["num_visual_tokens"], seed=run["seed"]
        ))
    columns = ["arm", "projector", "num_visual_tokens", "seed", "tag", "step", "value"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def collect_predictions(runs_root: str | Path, sweep: str) -> pd.DataFrame:
    """Per-question test answers of every completed run of `sweep` (predictions_test.json: {question id:
    {pred, answer, category}}): columns arm, projector, num_visual_tokens, resolution, stage, seed, question,
    category, pred, answer, correct. The question ids follow the data seed, so arms can be paired on them."""
    runs = collect_runs(runs_root, sweep)
    rows = []
    for _, run in runs[runs["status"] == "completed"].iterrows():
        path = Path(runs_root) / sweep / run["arm"] / "predictions_test.json"
        if not path.is_file():
            continue
        for qid, p in read_json(path).items():
            rows.append({
                "arm": run["arm"], "projector": run["projector"], "num_visual_tokens": run["num_visual_tokens"],
                "resolution": run["resolution"], "stage": run["stage"], "seed": run["seed"], "question": qid,
                "category": p.get("category"), "pred": p.get("pred"), "answer": p.get("answer"),
                "correct": p.get("pred") == p.get("answer"),
            })
    columns = ["arm", "projector", "num_visual_tokens", "resolution", "stage", "seed", "question", "category",
               "pred", "answer", "correct"]
    return pd.DataFrame(rows, columns=columns)
