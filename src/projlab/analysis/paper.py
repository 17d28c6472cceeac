"""The paper's published numbers (analysis/paper_numbers.csv) beside this sweep's, where the configuration
matches: same projector, same M, same LLM, and a score from `make eval` on the same benchmark. Nothing is
matched loosely: a tiny-preset sweep matches no row, and the table says so."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from projlab.analysis.render import DASH, Table, missing, pm
from projlab.analysis.stats import mean_std

PAPER_NUMBERS = Path(__file__).resolve().parents[3] / "analysis" / "paper_numbers.csv"


def load_paper_numbers(path: str | Path = PAPER_NUMBERS) -> pd.DataFrame:
    return pd.read_csv(path, comment="#", dtype={"num_visual_tokens": "Int64"})


def _score(benchmarks, bench_key: str, score_path: str):
    node = (benchmarks or {}).get(bench_key)
    for part in score_path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node if isinstance(node, (int, float)) else None


def matching_runs(row: pd.Series, runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs with the row's projector, M and LLM (the row's `llm` inside the run's llm path)."""
    if missing(row["projector"]) or missing(row["num_visual_tokens"]) or missing(row["llm"]) or runs.empty:
        return runs.iloc[0:0]
    llm = runs["llm"].fillna("").astype(str).str.lower()
    sel = ((runs["status"] == "completed") & (runs["projector"] == row["projector"])
           & (runs["num_visual_tokens"] == row["num_visual_tokens"]) & llm.str.contains(str(row["llm"]).lower(),
                                                                                        regex=False))
    return runs[sel.fillna(False)]


def this_sweep(row: pd.Series, runs: pd.DataFrame) -> tuple[str, float, float, int]:
    """The sweep's comparable number for one paper row (display text, mean, std, seeds)."""
    if missing(row["value"]):
        return DASH, None, None, 0
    found = matching_runs(row, runs)
    if found.empty:
        presets = ", ".join(sorted({str(p) for p in runs["preset"].dropna()})) or "none"
        what = f"{row['projector']}, M={row['num_visual_tokens']}, {row['llm']}"
        return f"no run with this configuration ({what}); this sweep: preset {presets}", None, None, 0
    if missing(row["bench_key"]):
        return f"{len(found)} matching run(s); not comparable ({row['note']})", None, None, 0
    scores = pd.Series([_score(b, row["bench_key"], row["score_path"]) for b in found["benchmarks"]], dtype=float)
    mean, sd, n = mean_std(scores)
    if n == 0:
        return f"{len(found)} matching run(s) without a {row['bench_key']} score (make eval)", None, None, 0
    scale = 1.0 if missing(row["scale"]) else float(row["scale"])
    return pm(mean, sd, scale) + f" (n={n} seeds)", mean * scale, None if missing(sd) else sd * scale, n


def paper_comparison(paper: pd.DataFrame, runs: pd.DataFrame, name: str = "paper_vs_sweep") -> Table:
    display, data = [], []
    for _, row in paper.iterrows():
        text, mean, sd, n = this_sweep(row, runs)
        paper_text = DASH if missing(row["value"]) else f"{row['value']:g}"
        display.append({"source": row["source"], "model": row["model"] if not missing(row["model"]) else DASH,
                        "projector": row["projector"], "benchmark": row["benchmark"] if not missing(row["benchmark"])
                        else DASH, "paper": paper_text, "this sweep": text,
                        "note": row["note"] if not missing(row["note"]) else ""})
        data.append({**row.to_dict(), "sweep_mean": mean, "sweep_std": sd, "sweep_seeds": n})
    caption = ("The paper's published numbers (analysis/paper_numbers.csv, from REFERENCE.md) beside this sweep's, "
               "only where projector, M, LLM and benchmark match; otherwise the cell says why not.")
    return Table(name, caption, pd.DataFrame(display), pd.DataFrame(data))
