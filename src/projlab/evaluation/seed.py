"""SEED-Bench (v1): the JSON reader and the per-question-type scorer (image questions only).

File format: {"questions": [{"question_id", "question", "choice_a", ..., "choice_d", "answer" (A-D),
"question_type_id", "data_id" (image file relative to the image folder), "data_type": "image"|"video"}],
"question_type": {"Scene Understanding": 1, ...}}. Video questions are dropped; a question without
`data_type` is taken as an image question. When `question_type` is absent, SEED-Bench's own numbering of
the nine image types is used.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from projlab.errors import UserError
from projlab.evaluation.answers import OPTION, read_answers
from projlab.evaluation.records import (
    BenchRecord,
    accuracy,
    check_answers,
    file_image_loader,
    is_missing,
    is_right,
    one_line,
    tally,
    verify_images,
)

BENCH = "seed"
QUESTION_TYPES = {
    "Scene Understanding": 1,
    "Instance Identity": 2,
    "Instance Attributes": 3,
    "Instance Location": 4,
    "Instances Counting": 5,
    "Spatial Relation": 6,
    "Instance Interaction": 7,
    "Visual Reasoning": 8,
    "Text Understanding": 9,
}
SPATIAL_CATEGORIES = ("Spatial Relation", "Instance Location")
_CHOICES = (("A", "choice_a"), ("B", "choice_b"), ("C", "choice_c"), ("D", "choice_d"))


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{BENCH}: data file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(one_line(f"{BENCH}: cannot read {path} as JSON: {err}")) from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise UserError(f'{BENCH}: {path} is not SEED-Bench JSON (expected an object with a "questions" list)')
    return data


def _is_image(question: dict[str, Any]) -> bool:
    return str(question.get("data_type", "image")).strip().lower() == "image"


def video_question_ids(path: str | Path) -> set[str]:
    """The ids of the questions `load_seed` leaves out (video): SEED-Bench's own eval.py answers them too,
    so its results.json holds predictions for them."""
    questions = _read(Path(path))["questions"]
    return {str(q["question_id"]).strip() for q in questions if isinstance(q, dict) and "question_id" in q
            and not _is_image(q)}


def load_seed(path: str | Path, images: str | Path | None = None, verify: bool = False) -> list[BenchRecord]:
    """Read SEED-Bench's JSON: one record per image question, id = str(question_id), category = the
    question type's name. Images are `images / data_id` (default folder: the JSON file's folder), read
    when `record.image()` is called (or all of them here when `verify` is true)."""
    path = Path(path)
    data = _read(path)
    image_dir = Path(images) if images is not None else path.parent
    if images is not None and not image_dir.is_dir():
        raise UserError(f"{BENCH}: image folder not found: {image_dir}")
    types = data.get("question_type") or QUESTION_TYPES
    try:
        names = {int(v): str(k) for k, v in types.items()}
    except (AttributeError, TypeError, ValueError):
        raise UserError(f'{BENCH}: "question_type" must map names to integer ids') from None

    records: list[BenchRecord] = []
    seen: set[str] = set()
    for n, q in enumerate(data["questions"]):
        if not isinstance(q, dict):
            raise UserError(f"{BENCH}: question #{n} is not an object")
        if not _is_image(q):
            continue
        if "question_id" not in q:
            raise UserError(f"{BENCH}: question #{n} has no question_id")
        qid = str(q["question_id"]).strip()
        if qid in seen:
            raise UserError(f"{BENCH}: duplicate question_id {qid}")
        seen.add(qid)
        for key in ("question", "question_type_id", "data_id"):
            if key not in q:
                raise UserError(f"{BENCH}: question_id {qid} has no {key}")
        options = {letter: str(q[key]).strip() for letter, key in _CHOICES if not is_missing(q.get(key))}
        if len(options) < 2:
            raise UserError(f"{BENCH}: question_id {qid} has fewer than two choices")
        answer = None
        if not is_missing(q.get("answer")):
            answer = str(q["answer"]).strip().upper()
            if answer not in options:
                raise UserError(one_line(f"{BENCH}: question_id {qid}: answer {answer!r} is not one of A-D"))
        try:
            category = names[int(q["question_type_id"])]
        except (KeyError, TypeError, ValueError):
            raise UserError(
                one_line(f"{BENCH}: question_id {qid}: unknown question_type_id {q['question_type_id']!r}")
            ) from None
        records.append(
            BenchRecord(
                id=qid,
                question=str(q["question"]).strip(),
                options=options,
                answer=answer,
                category=category,
                benchmark=BENCH,
                index=qid,
                group=qid,
                load_image=file_image_loader(image_dir / str(q["data_id"]), BENCH, qid),
            )
        )
    if verify:
        verify_images(records)
    return records


def score_seed(
    records: Iterable[BenchRecord], predictions: Mapping[str, Any], answers: str = "keys"
) -> dict[str, Any]:
    """Accuracy per question type and overall (over all image questions, SEED-Bench's "Image" figure),
    with the spatial types (Spatial Relation, Instance Location) and the others summarised apart.
    `predictions`: id -> letter, or with `answers="text"` a model's answer read as VLMEvalKit reads it
    (`projlab.evaluation.answers`). A missing or unreadable prediction, or a question without an answer,
    counts as wrong (see `n_predictions_missing`, `reading`, `n_without_answer`)."""
    records = list(records)
    n_without_answer = check_answers(records, BENCH)
    by_id = {r.id: r for r in records}
    reading = read_answers(BENCH, by_id, predictions, answers, OPTION)
    results = [(r.category, is_right(r, reading.keys)) for r in records]
    per_category = tally(results)

    def summary(rows: list[tuple[str, bool]]) -> dict[str, Any]:
        return {"accuracy": accuracy(sum(ok for _, ok in rows), len(rows)), "n": len(rows)}

    spatial = [(c, ok) for c, ok in results if c in SPATIAL_CATEGORIES]
    others = [(c, ok) for c, ok in results if c not in SPATIAL_CATEGORIES]
    return {
        "benchmark": BENCH,
        "overall": summary(results),
        "per_category": per_category,
        "spatial": {**summary(spatial), "categories": {k: v for k, v in per_category.items() if k in SPATIAL_CATEGORIES}},
        "others": {**summary(others), "categories": {k: v for k, v in per_category.items() if k not in SPATIAL_CATEGORIES}},
        "n_predictions_expected": len(records),
        "n_predictions_missing": reading.missing(by_id),
        "n_without_answer": n_without_answer,
        "reading": reading.summary(),
    }
