"""Analysis: logged runs -> one tidy DataFrame -> the paper's tables and figures.

`collect` reads results.json, TensorBoard events and per-question predictions; `tables`, `stats` and
`figures` build from those frames only; `report` executes the notebooks in analysis/ headless.
"""
from projlab.analysis.collect import collect_curves, collect_predictions, collect_runs

__all__ = ["collect_runs", "collect_curves", "collect_predictions"]
