"""The public benchmarks by name: `load_benchmark(name, path)` and `score_benchmark(name, records, preds)`.

The formats and scoring rules live one per module (`mmbench`, `seed`, `mme`); the record type in
`records`. A model-side evaluation answers every record of `records_to_answer(name, records)` (for
MMBench the circular copies) with a key of `record.options`, then hands `{record.id: key}` to the scorer;
a model's answers as text are scored with `answers="text"` (read as the peers read them: `answers`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from projlab.errors import UserError
from projlab.evaluation.mme import load_mme, score_mme
from projlab.evaluation.mmbench import circular_expand, load_mmbench, score_mmbench
from projlab.evaluation.records import BenchRecord
from projlab.evaluation.seed import load_seed, score_seed, video_question_ids

SCORERS: dict[str, Callable[..., dict[str, Any]]] = {  # (records, predictions, answers="keys") -> scores
    "mmbench": score_mmbench,
    "seed": score_seed,
    "mme": score_mme,
}
BENCHMARKS = tuple(SCORERS)


def _check(name: str) -> str:
    if name not in SCORERS:
        raise UserError(f"unknown benchmark {name!r} (choose from {', '.join(BENCHMARKS)})")
    return name


def load_benchmark(
    name: str, path: str | Path, images: str | Path | None = None, verify: bool = False
) -> list[BenchRecord]:
    """Read benchmark `name` from `path`; `images` is SEED-Bench's image folder (an error for the others,
    whose images live inside the data)."""
    _check(name)
    if images is not None and name != "seed":
        raise UserError(f"an image folder is only read for seed, not for {name}")
    if name == "mmbench":
        return load_mmbench(path, verify=verify)
    if name == "seed":
        return load_seed(path, images=images, verify=verify)
    return load_mme(path, verify=verify)


def records_to_answer(name: str, records: Iterable[BenchRecord]) -> list[BenchRecord]:
    """The records a model must answer to be scored: MMBench's circular copies, the records otherwise."""
    return circular_expand(records) if _check(name) == "mmbench" else list(records)


def unscored_ids(name: str, path: str | Path) -> set[str]:
    """Ids of the data file's questions that are not scored, whose predictions are left aside rather than
    refused as unknown: SEED-Bench's video questions."""
    return video_question_ids(path) if _check(name) == "seed" else set()


def score_benchmark(
    name: str, records: Iterable[BenchRecord], predictions: Mapping[str, Any], answers: str = "keys"
) -> dict[str, Any]:
    """The scores of `predictions`: option keys (`answers="keys"`, the model side) or a model's answers as
    text (`answers="text"`)."""
    return SCORERS[_check(name)](records, predictions, answers=answers)
