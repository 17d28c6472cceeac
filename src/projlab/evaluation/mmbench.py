"""MMBench: the TSV reader, circular expansion and the circular-evaluation scorer.

File format (one row per question; tab-separated, as VLMEvalKit / OpenCompass ship it): columns
`index, question, hint, A, B, C, D, answer, category, l2-category, image` (others are ignored).
`image` is the base64 of the image bytes; VLMEvalKit also writes a short string naming another row's
index instead of repeating the same image, which is resolved here. Options that are empty/NaN are absent.
`answer` may be missing altogether (the test split): the records then carry `answer=None`.

Circular evaluation (MMBench's rule): the options of a question with N options are shifted N times
(ABCD, BCDA, CDAB, DABC, the answer letter following its text); the question counts as correct only if
every shifted copy is answered correctly. Files that carry the shifted copies themselves give them indices
`base + k * 1_000_000`, so copies are grouped by `index % 1_000_000`; as for the peers, the questions are
the rows below 1e6, so copies whose base row is absent are not scored. A file whose indices are all below
1e6 has one row per question and `circular_expand` builds the N shifts (ids "<index>-r<k>").
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from projlab.errors import UserError
from projlab.evaluation.answers import OPTION, read_answers
from projlab.evaluation.records import (
    BenchRecord,
    accuracy,
    base64_image_loader,
    check_answers,
    is_missing,
    is_right,
    one_line,
    verify_images,
)

BENCH = "mmbench"
ROTATION_BASE = 1_000_000
# MMBench's own category strings for the two spatial abilities; spellings are normalised (case, spaces,
# hyphens, British -isation) before matching, and the built-in benchmark's "spatial_relation" matches too.
SPATIAL_CATEGORIES = ("spatial_relationship", "object_localization")
_SPATIAL_KEYS = {"spatial_relationship", "spatial_relation", "object_localization", "object_localisation"}
REQUIRED_COLUMNS = ("index", "question", "A", "B", "category")


def canonical_category(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


def is_spatial(category: str) -> bool:
    return canonical_category(category) in _SPATIAL_KEYS


def _read_table(path: Path):
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{BENCH}: data file not found: {path}")
    try:
        # keep_default_na=False: an option reading "None" or "NA" is text, not a missing value
        return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as err:  # pandas.errors.ParserError, UnicodeDecodeError, EmptyDataError...
        raise UserError(one_line(f"{BENCH}: cannot read {path} as a TSV file: {err}")) from None


def load_mmbench(path: str | Path, verify: bool = False) -> list[BenchRecord]:
    """Read an MMBench TSV file: one record per row, id = str(index). Images are decoded when
    `record.image()` is called (or all of them here when `verify` is true)."""
    path = Path(path)
    df = _read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{BENCH}: {path} lacks the column(s) {', '.join(missing)}")
    letters = sorted(c for c in df.columns if len(c) == 1 and c.isupper())
    l2_column = next((c for c in ("l2-category", "l2_category", "L2-category") if c in df.columns), None)
    has_image = "image" in df.columns

    rows: list[dict[str, Any]] = df.to_dict("records")
    indices: list[int] = []
    seen: set[int] = set()
    for row in rows:
        raw = str(row["index"]).strip()
        try:
            index = int(raw)
        except ValueError:
            raise UserError(one_line(f"{BENCH}: index {raw!r} is not an integer")) from None
        if index < 0:
            raise UserError(f"{BENCH}: index {index} is negative")
        if index in seen:
            raise UserError(f"{BENCH}: duplicate index {index} in {path}")
        seen.add(index)
        indices.append(index)

    images = {str(i): str(row["image"]) for i, row in zip(indices, rows)} if has_image else {}

    def image_for(index: int) -> str:
        data = images[str(index)]
        if len(data.strip()) <= 64 and data.strip() in images:  # VLMEvalKit: a reference to another row
            data = images[data.strip()]
        return data

    records = []
    for index, row in zip(indices, rows):
        options = {k: str(row[k]).strip() for k in letters if not is_missing(row[k])}
        if len(options) < 2:
            raise UserError(f"{BENCH}: index {index} has fewer than two options")
        answer = None
        if "answer" in row and not is_missing(row["answer"]):
            answer = str(row["answer"]).strip().upper()
            if answer not in options:
                raise UserError(
                    one_line(f"{BENCH}: index {index}: answer {answer!r} is not one of its options {', '.join(options)}")
                )
        question = str(row["question"]).strip()
        if "hint" in row and not is_missing(row["hint"]):
            question = f"{str(row['hint']).strip()}\n{question}"
        l2 = None if l2_column is None or is_missing(row[l2_column]) else str(row[l2_column]).strip()
        if has_image:
            loader = base64_image_loader(image_for(index), BENCH, str(index))
        else:

            def loader(index=index):
                raise UserError(f"{BENCH}: index {index}: the file has no image column")

        records.append(
            BenchRecord(
                id=str(index),
                question=question,
                options=options,
                answer=answer,
                category=str(row["category"]).strip(),
                benchmark=BENCH,
                index=str(index),
                group=str(index % ROTATION_BASE),
                l2_category=l2,
                rotation=index // ROTATION_BASE,
                load_image=loader,
            )
        )
    if verify:
        verify_images(records)
    return records


def rotate(record: BenchRecord, k: int) -> BenchRecord:
    """The k-th circular shift of `record`'s options (k=0: unchanged options): the option text at
    position i becomes the text that was at position i+k; the answer letter follows its text."""
    letters = list(record.options)
    n = len(letters)
    texts = [record.options[x] for x in letters]
    options = {letters[i]: texts[(i + k) % n] for i in range(n)}
    answer = None
    if record.answer is not None:
        answer = letters[(letters.index(record.answer) - k) % n]
    return BenchRecord(
        id=f"{record.id}-r{k}",
        question=record.question,
        options=options,
        answer=answer,
        category=record.category,
        benchmark=record.benchmark,
        index=record.index,
        group=record.group,
        l2_category=record.l2_category,
        rotation=k,
        load_image=record.load_image,
    )


def circular_expand(records: Iterable[BenchRecord]) -> list[BenchRecord]:
    """The records a model must answer for circular evaluation. If the records already hold shifted
    copies (a source index >= 1e6, or records produced by this function), they are returned as they are;
    otherwise each question with N options yields N records with ids "<index>-r0" ... "<index>-r<N-1>"."""
    records = list(records)
    if any(r.rotation > 0 for r in records):
        return records
    return [rotate(r, k) for r in records for k in range(len(r.options))]


def _summary(groups: list[tuple[bool, bool]]) -> dict[str, Any]:
    n = len(groups)
    return {
        "accuracy": accuracy(sum(c for c, _ in groups), n),
        "plain_accuracy": accuracy(sum(p for _, p in groups), n),
        "n": n,
    }


def _by(key: str, results: list[tuple[BenchRecord, bool, bool]]) -> dict[str, dict[str, Any]]:
    buckets: dict[str, list[tuple[bool, bool]]] = {}
    for primary, circ, plain in results:
        name = getattr(primary, key)
        if name is not None:
            buckets.setdefault(name, []).append((circ, plain))
    return {k: _summary(v) for k, v in sorted(buckets.items())}


def score_mmbench(
    records: Iterable[BenchRecord], predictions: Mapping[str, Any], answers: str = "keys"
) -> dict[str, Any]:
    """Score `predictions` (id -> letter, or with `answers="text"` a model's answer read as VLMEvalKit
    reads it: `projlab.evaluation.answers`) against `records` (as loaded, or as `circular_expand`ed).

    `accuracy` is MMBench's circular accuracy (a question counts only if all its shifted copies are
    right), `plain_accuracy` scores the unshifted copy alone; `n` counts questions (not copies). Ids are
    those of `circular_expand(records)`; for generated shifts "<index>" is also accepted for "<index>-r0".
    As the peers score: a question is a row with index < 1e6 (copies whose base row is absent are left
    out, see `n_copies_without_base`); a missing or unreadable prediction, or a row without an answer,
    counts as wrong. Raises `UserError` for a prediction naming an unknown id (and, for keys, a letter
    that is not one of that question's options).
    """
    records = list(records)
    check_answers(records, BENCH)
    full = circular_expand(records)
    by_id = {r.id: r for r in full}
    if len(by_id) != len(full):
        raise UserError(f"{BENCH}: duplicate record ids among the records to score")
    aliases = {r.group: r.id for r in full if r.rotation == 0 and r.id != r.group and r.group not in by_id}
    groups: dict[str, list[BenchRecord]] = {}
    for r in full:
        groups.setdefault(r.group, []).append(r)
    orphans = {r.id for members in groups.values() if all(m.rotation > 0 for m in members) for r in members}
    scored_predictions = {k: v for k, v in predictions.items() if str(k).strip() not in orphans}
    reading = read_answers(BENCH, by_id, scored_predictions, answers, OPTION, aliases)
    preds = reading.keys

    results: list[tuple[BenchRecord, bool, bool]] = []
    scored: list[BenchRecord] = []
    n_without_answer = 0
    for members in groups.values():
        members.sort(key=lambda r: r.rotation)
        primary = members[0]
        if primary.rotation > 0:
            continue
        scored += members
        n_without_answer += any(r.answer is None for r in members)
        results.append((primary, all(is_right(r, preds) for r in members), is_right(primary, preds)))

    per_category = _by("category", results)
    spatial = {k: v for k, v in per_category.items() if is_spatial(k)}
    others = {k: v for k, v in per_category.items() if not is_spatial(k)}
    out: dict[str, Any] = {
        "benchmark": BENCH,
        "overall": _summary([(c, p) for _, c, p in results]),
        "per_category": per_category,
        "spatial": {
            **_summary([(c, p) for r, c, p in results if is_spatial(r.category)]),
            "categories": spatial,
        },
        "others": {
            **_summary([(c, p) for r, c, p in results if not is_spatial(r.category)]),
            "categories": others,
        },
        "circular_copies": "file" if any(r.rotation > 0 for r in records) else "generated",
        "n_predictions_expected": len(scored),
        "n_predictions_missing": reading.missing(r.id for r in scored),
        "n_without_answer": n_without_answer,
        "n_copies_without_base": len(orphans),
        "reading": reading.summary(),
    }
    per_l2 = _by("l2_category", results)
    if per_l2:
        out["per_l2_category"] = per_l2
    return out
