"""The question record every benchmark reader produces, and the helpers the scorers share.

A `BenchRecord` carries the same core fields as `projlab.data.spatial.Item` (id, question, options,
answer, category), so the model side can treat the built-in benchmark and the public ones alike: it
scores every option of `record.options` by likelihood and predicts the winning *key* (a letter; for MME
"A" = Yes, "B" = No). The scorers take `{record.id: key}`, or a model's answers as text (`answers`).
"""
from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from PIL import Image

from projlab.errors import UserError


def one_line(text: object) -> str:
    """`text` with its newlines folded into spaces (error messages are one line)."""
    return " ".join(str(text).split())


def _image_error(benchmark: str, index: str, what: str, err: BaseException) -> UserError:
    return UserError(one_line(f"{benchmark}: index {index}: {what}: {type(err).__name__}: {err}"))


def _decode(data: bytes, benchmark: str, index: str, what: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # PIL decodes lazily: force it so a truncated file fails here, not later
        return img.convert("RGB")
    except Exception as err:  # PIL raises UnidentifiedImageError, OSError, ValueError, SyntaxError...
        raise _image_error(benchmark, index, what, err) from None


def base64_image_loader(data: str, benchmark: str, index: str) -> Callable[[], Image.Image]:
    """A loader that decodes the base64 string `data` into an RGB image when called."""

    def load() -> Image.Image:
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as err:
            raise _image_error(benchmark, index, "image is not valid base64", err) from None
        if not raw:
            raise UserError(f"{benchmark}: index {index}: image field is empty")
        return _decode(raw, benchmark, index, "image cannot be decoded")

    return load


def file_image_loader(path: Path, benchmark: str, index: str) -> Callable[[], Image.Image]:
    """A loader that reads and decodes the image file `path` into an RGB image when called."""

    def load() -> Image.Image:
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            raise _image_error(benchmark, index, f"cannot read image file {path}", err) from None
        return _decode(raw, benchmark, index, f"image file {path} cannot be decoded")

    return load


def _no_image() -> Image.Image:
    raise UserError("this record has no image")


@dataclass
class BenchRecord:
    """One multiple-choice question about one image, from a benchmark file.

    `options` holds only the options present (key -> text). `answer` is a key of `options`, or None when
    the file carries no answers (e.g. MMBench's test split). `group` ties records scored together: the
    base question of MMBench's circular evaluation (all rotations share it), the image for MME (acc+),
    the question itself for SEED-Bench. `rotation` is the MMBench circular shift (0 = as in the source).
    """

    id: str
    question: str
    options: dict[str, str]
    answer: str | None
    category: str
    benchmark: str
    index: str  # the source's own index / question id (named in error messages)
    group: str
    l2_category: str | None = None
    rotation: int = 0
    load_image: Callable[[], Image.Image] = field(default=_no_image, repr=False, compare=False)

    def image(self) -> Image.Image:
        """The decoded RGB image; raises `UserError` naming the benchmark and index if it cannot be."""
        return self.load_image()

    @property
    def answer_text(self) -> str | None:
        return None if self.answer is None else self.options[self.answer]


def verify_images(records: Iterable[BenchRecord]) -> None:
    """Decode every image once (raises `UserError` on the first record whose image is broken)."""
    seen: set[int] = set()
    for rec in records:
        if id(rec.load_image) not in seen:  # rotated copies share one loader
            seen.add(id(rec.load_image))
            rec.image()


def is_missing(value: Any) -> bool:
    """True for NaN/None/empty cells (how pandas and hand-written files spell an absent value)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    text = str(value).strip()
    return text == "" or text.lower() == "nan"


def accuracy(correct: int, n: int) -> float | None:
    return correct / n if n else None


def check_answers(records: Iterable[BenchRecord], benchmark: str) -> int:
    """The number of records without an answer, which score as wrong (as the peers score them). Raises
    `UserError` when no record has one (a test split: there is nothing to score against)."""
    records = list(records)
    missing = sum(1 for rec in records if rec.answer is None)
    if records and missing == len(records):
        raise UserError(f"{benchmark}: the data file has no answer for any question (a test split?): cannot score")
    return missing


def is_right(record: BenchRecord, predictions: Mapping[str, str]) -> bool:
    """Whether `predictions` (id -> option key) answers `record` right; a record without an answer never is."""
    return record.answer is not None and predictions.get(record.id) == record.answer


def normalise_predictions(
    benchmark: str,
    records: Mapping[str, BenchRecord],
    predictions: Mapping[Any, Any],
    aliases: Mapping[str, str] | None = None,
    accept_text: bool = False,
) -> dict[str, str]:
    """Check `predictions` (id -> option key) against `records` (id -> record) and return them keyed by
    record id with canonical keys (case is ignored). `aliases` maps other accepted ids to a record id;
    with `accept_text`, an option's text is accepted for its key too (MME: "Yes" for "A"). Raises
    `UserError` for an unknown id, a non-string option, or an option that is not one of the record's."""
    aliases = aliases or {}
    out: dict[str, str] = {}
    for raw_id, raw_pred in predictions.items():
        qid = str(raw_id).strip()
        target = qid if qid in records else aliases.get(qid)
        if target is None:
            raise UserError(one_line(f"{benchmark}: prediction for unknown question id {qid!r}"))
        rec = records[target]
        if not isinstance(raw_pred, str):
            raise UserError(one_line(f"{benchmark}: prediction for {qid!r} must be a string, got {raw_pred!r}"))
        by_lower = {v.lower(): k for k, v in rec.options.items()} if accept_text else {}
        by_lower.update({k.lower(): k for k in rec.options})
        key = by_lower.get(raw_pred.strip().lower())
        if key is None:
            raise UserError(
                one_line(
                    f"{benchmark}: invalid prediction {raw_pred!r} for question {qid!r}: "
                    f"expected one of {', '.join(rec.options)}"
                    + (f" or {', '.join(rec.options.values())}" if accept_text else "")
                )
            )
        if target in out and out[target] != key:
            raise UserError(one_line(f"{benchmark}: conflicting predictions for question {target!r}"))
        out[target] = key
    return out


def tally(pairs: Iterable[tuple[str, bool]]) -> dict[str, dict[str, Any]]:
    """(name, correct) pairs -> {name: {"accuracy", "n"}}, names sorted."""
    counts: dict[str, list[int]] = {}
    for name, ok in pairs:
        c = counts.setdefault(name, [0, 0])
        c[0] += int(ok)
        c[1] += 1
    return {k: {"accuracy": accuracy(c, n), "n": n} for k, (c, n) in sorted(counts.items())}
