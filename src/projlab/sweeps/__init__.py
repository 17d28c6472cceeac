"""Sweeps: many arms of `projlab.train`, each its own process, known only by its command line and results.json.

- `runner`: run one arm as a process (log, status read back, crash recorded, signals forwarded).
- `grid`: `python -m projlab.sweeps.grid`, the projector x tokens x resolution x seed product, resumable.
- `multirun`: `python -m projlab.train -m ...`, Hydra's sweep syntax expanded into arms for the grid's executor.
- `naming`: a sweep's default folder name, derived from what it sweeps.
- `view`: what a person sees while it runs (a live table on a terminal, a line per arm event elsewhere).
- `search`: `python -m projlab.sweeps.search sweeps/<file>.yaml`, Optuna ask/tell on shared storage.
- `pruning`: the Lightning callback a trial process uses to report to its study and stop when pruned.
"""
