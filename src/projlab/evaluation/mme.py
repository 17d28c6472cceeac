"""MME: the folder reader and the acc / acc+ / score scorer.

Layout (as MME_Benchmark_release_version ships it): one folder per sub-task, each either with `images/`
plus `questions_answer_YN/` (one .txt per image), or with the images and the .txt files side by side
(same stem). Each .txt line is "question<TAB>Yes|No"; two questions per image. `path` may also be a
single sub-task folder, or the folder that holds MME_Benchmark_release_version/ (with eval_tool/ beside
it, as the download unpacks); other folders (eval_tool/ with its readme.txt) are not sub-tasks.

Scoring (MME's calculation.py): per sub-task, acc = right questions / questions, acc+ = images with every
question right / images, score = (acc + acc+) * 100. Perception = the sum of the perception sub-tasks'
scores, cognition = the sum of the rest's.

A record's options are {"A": "Yes", "B": "No"} (letter keys, like every other benchmark, so the
model side is the same) and its answer is "A" or "B"; the scorer takes the letter or "Yes"/"No" (case
ignored) as the model side's key, or a model's answer as text, read as the peers read it ("yes"/"no" as
its first word; "A" is no answer there). A record's id is "<sub-task>/<image stem>/<k>", k = 0, 1 the
question's line in the image's .txt. `read_results_folder` reads calculation.py's own input (one
"<sub-task>.txt" per sub-task, lines "image<TAB>question<TAB>answer<TAB>prediction").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from projlab.errors import UserError
from projlab.evaluation.answers import YES_NO, read_answers
from projlab.evaluation.records import (
    BenchRecord,
    accuracy,
    check_answers,
    file_image_loader,
    is_right,
    one_line,
    verify_images,
)

BENCH = "mme"
PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SPATIAL_TASKS = ("position",)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
QA_DIR = "questions_answer_YN"
OPTIONS = {"A": "Yes", "B": "No"}
_LETTER = {text: letter for letter, text in OPTIONS.items()}
_KNOWN = {name.lower(): name for name in PERCEPTION + COGNITION}


def canonical_task(name: str) -> str:
    """The MME spelling of a sub-task folder name ("ocr" -> "OCR"); unknown names are kept as they are."""
    return _KNOWN.get(name.lower(), name)


def is_perception(task: str) -> bool:
    return canonical_task(task) in PERCEPTION


def _images_in(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _layout(task_dir: Path) -> tuple[list[Path], dict[str, Path], Path]:
    """(question files, image stem -> path, image folder) of one sub-task folder."""
    qa = task_dir / QA_DIR
    if qa.is_dir():
        image_dir = task_dir / "images"
        return sorted(qa.glob("*.txt")), _images_in(image_dir), image_dir
    return sorted(task_dir.glob("*.txt")), _images_in(task_dir), task_dir


def _is_task_dir(folder: Path) -> bool:
    """questions_answer_YN/, or .txt files that pair with images or sit in a folder named after a sub-task
    (so a stray readme.txt, as in eval_tool/, makes no sub-task)."""
    if (folder / QA_DIR).is_dir():
        return True
    txts = {p.stem for p in folder.glob("*.txt")}
    return bool(txts) and (folder.name.lower() in _KNOWN or bool(txts & set(_images_in(folder))))


def _task_dirs_in(folder: Path) -> list[Path]:
    return [d for d in sorted(folder.iterdir())
            if d.is_dir() and not d.name.startswith((".", "_")) and _is_task_dir(d)]


def _find_task_dirs(root: Path) -> list[Path]:
    """The sub-task folders: `root` itself, its sub-folders, or those of the one sub-folder holding them."""
    if _is_task_dir(root):
        return [root]
    task_dirs = _task_dirs_in(root)
    if task_dirs:
        return task_dirs
    holders = {d: found for d in sorted(root.iterdir()) if d.is_dir() and (found := _task_dirs_in(d))}
    if len(holders) > 1:
        raise UserError(one_line(f"{BENCH}: {root} holds several MME folders ({', '.join(d.name for d in holders)}): "
                                 "name one"))
    return next(iter(holders.values()), [])


def _parse(txt: Path) -> list[tuple[str, str]]:
    try:
        lines = txt.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(one_line(f"{BENCH}: cannot read {txt}: {err}")) from None
    out = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise UserError(f"{BENCH}: {txt}:{lineno}: expected 'question<TAB>Yes|No'")
        question, answer = line.rsplit("\t", 1)
        key = {"yes": "Yes", "no": "No"}.get(answer.strip().lower())
        if key is None:
            raise UserError(one_line(f"{BENCH}: {txt}:{lineno}: answer {answer.strip()!r} is not Yes or No"))
        out.append((question.strip(), key))
    if not out:
        raise UserError(f"{BENCH}: {txt} holds no question")
    return out


def _missing_image(index: str, stem: str, folder: Path):
    def load():
        raise UserError(f"{BENCH}: index {index}: no image named {stem}.* in {folder}")

    return load


def load_mme(path: str | Path, verify: bool = False) -> list[BenchRecord]:
    """Read an MME folder (a folder of sub-task folders, or one sub-task folder): one record per question,
    category = the sub-task (MME spelling), group = the image. Images are read when `record.image()` is
    called (or all of them here when `verify` is true)."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{BENCH}: data folder not found: {root}")
    task_dirs = _find_task_dirs(root)
    if not task_dirs:
        raise UserError(f"{BENCH}: no MME sub-task folder (with {QA_DIR}/ or .txt question files) in {root}")

    records: list[BenchRecord] = []
    for task_dir in task_dirs:
        task = canonical_task(task_dir.name)
        txts, images, image_dir = _layout(task_dir)
        for txt in txts:
            group = f"{task}/{txt.stem}"
            if txt.stem in images:
                loader = file_image_loader(images[txt.stem], BENCH, group)
            else:
                loader = _missing_image(group, txt.stem, image_dir)
            for k, (question, answer) in enumerate(_parse(txt)):
                rid = f"{group}/{k}"
                records.append(
                    BenchRecord(
                        id=rid,
                        question=question,
                        options=dict(OPTIONS),
                        answer=_LETTER[answer],
                        category=task,
                        benchmark=BENCH,
                        index=rid,
                        group=group,
                        load_image=loader,
                    )
                )
    if verify:
        verify_images(records)
    return records


def read_results_folder(folder: str | Path, records: Iterable[BenchRecord]) -> dict[str, str]:
    """id -> prediction from MME calculation.py's input folder: "<sub-task>.txt" files (other files are not
    read, as calculation.py reads only the sub-tasks' names) whose lines "image<TAB>question<TAB>answer<TAB>
    prediction" are matched to `records` by sub-task, image stem and question. Raises `UserError` for a
    line that names no question of the data."""
    folder = Path(folder)
    by_key: dict[tuple[str, str, str], list[str]] = {}
    for r in records:
        by_key.setdefault((r.category, r.group.split("/", 1)[1], r.question), []).append(r.id)
    out: dict[str, str] = {}
    for txt in sorted(folder.glob("*.txt")):
        if txt.stem.lower() not in _KNOWN:
            continue
        task = canonical_task(txt.stem)
        try:
            lines = txt.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(one_line(f"{BENCH}: cannot read {txt}: {err}")) from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            fields = line.split("\t", 3)
            if len(fields) < 4:
                raise UserError(f"{BENCH}: {txt}:{lineno}: expected 'image<TAB>question<TAB>answer<TAB>prediction'")
            image, question, _, prediction = fields
            ids = by_key.get((task, Path(image.strip()).stem, question.strip()))
            if not ids:
                raise UserError(one_line(f"{BENCH}: {txt}:{lineno}: no question {question.strip()!r} about image "
                                         f"{image.strip()!r} in the {task} data"))
            out[ids.pop(0)] = prediction
    return out


def score_mme(
    records: Iterable[BenchRecord], predictions: Mapping[str, Any], answers: str = "keys"
) -> dict[str, Any]:
    """Per sub-task acc, acc+ and score = (acc + acc+) * 100; overall perception and cognition sums (over
    the sub-tasks present) and plain question accuracy. `predictions`: id -> key ("A"/"B" or "Yes"/"No"),
    or with `answers="text"` a model's answer read as the peers read it (`projlab.evaluation.answers`).
    A missing or unreadable prediction counts as wrong."""
    records = list(records)
    check_answers(records, BENCH)
    by_id = {r.id: r for r in records}
    reading = read_answers(BENCH, by_id, predictions, answers, YES_NO, accept_text=True)
    preds = reading.keys

    tasks: dict[str, dict[str, list[bool]]] = {}  # task -> image -> [right per question]
    for r in records:
        tasks.setdefault(r.category, {}).setdefault(r.group, []).append(is_right(r, preds))
    per_category: dict[str, dict[str, Any]] = {}
    for task in sorted(tasks, key=lambda t: (not is_perception(t), t.lower())):
        per_image = tasks[task]
        n = sum(len(v) for v in per_image.values())
        acc = sum(sum(v) for v in per_image.values()) / n
        acc_plus = sum(all(v) for v in per_image.values()) / len(per_image)
        per_category[task] = {
            "accuracy": acc,
            "acc_plus": acc_plus,
            "score": (acc + acc_plus) * 100,
            "n": n,
            "n_images": len(per_image),
        }
    perception = sum(v["score"] for k, v in per_category.items() if is_perception(k))
    cognition = sum(v["score"] for k, v in per_category.items() if not is_perception(k))
    spatial = {k: v for k, v in per_category.items() if k in SPATIAL_TASKS}
    n_right = sum(is_right(r, preds) for r in records)
    return {
        "benchmark": BENCH,
        "overall": {
            "perception": perception,
            "cognition": cognition,
            "total": perception + cognition,
            "accuracy": accuracy(n_right, len(records)),
            "n": len(records),
        },
        "per_category": per_category,
        "spatial": {"score": sum(v["score"] for v in spatial.values()), "categories": spatial},
        "perception_tasks_missing": [t for t in PERCEPTION if t not in per_category],
        "cognition_tasks_missing": [t for t in COGNITION if t not in per_category],
        "n_predictions_expected": len(records),
        "n_predictions_missing": reading.missing(by_id),
        "reading": reading.summary(),
    }
