"""Score a predictions file against a public benchmark, without any model.

    python -m projlab.evaluation.score_predictions --bench mmbench|seed|mme --data PATH \
        [--images FOLDER (seed)] --predictions FILE.json|FILE.jsonl [--answers text|keys] [--out SCORES.json] \
        [--verify-images]

Predictions: a .json object {question id: answer}, or a .json list / .jsonl lines of objects
{"id": ..., "prediction": ...} (also accepted: "question_id"/"index" for the id, "option"/"pred"/"choice"
for the answer) or one-key objects {id: answer}. MMBench ids are the TSV index, or "<index>-r<k>" for the
circular shifts built when the file has none. Answers are read as the peers read them (`--answers text`,
the default: `projlab.evaluation.answers`); `--answers keys` scores projlab's own predictions_<bench>.json
(option keys; MME "A" = Yes). Prints the scores as JSON; bad input exits 2 with one `error:` line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from projlab.cli import ArgumentParser
from projlab.errors import UserError, exit_on_user_error
from projlab.evaluation.answers import ANSWER_MODES
from projlab.evaluation.benchmarks import BENCHMARKS, load_benchmark, score_benchmark
from projlab.evaluation.records import one_line
from projlab.io import write_json

ID_KEYS = ("id", "question_id", "index")
OPTION_KEYS = ("prediction", "option", "pred", "choice")


def _entry(obj: Any, where: str) -> tuple[str, Any]:
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected an object, got {type(obj).__name__}")
    id_key = next((k for k in ID_KEYS if k in obj), None)
    opt_key = next((k for k in OPTION_KEYS if k in obj), None)
    if id_key is not None and opt_key is not None:
        return str(obj[id_key]), obj[opt_key]
    if len(obj) == 1:
        (qid, pred), = obj.items()
        return str(qid), pred
    raise UserError(
        f"{where}: expected {{\"id\": ..., \"prediction\": ...}} or {{id: option}}, got keys {', '.join(map(str, obj))}"
    )


def read_predictions(path: str | Path) -> dict[str, Any]:
    """id -> option from a .json or .jsonl file (formats in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(one_line(f"cannot read predictions {path}: {err}")) from None
    entries: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as err:
                raise UserError(one_line(f"{path}:{lineno}: not JSON: {err}")) from None
            entries.append(_entry(obj, f"{path}:{lineno}"))
    else:
        try:
            data = json.loads(text)
        except ValueError as err:
            raise UserError(one_line(f"{path}: not JSON: {err}")) from None
        if isinstance(data, dict):
            entries = [(str(k), v) for k, v in data.items()]
        elif isinstance(data, list):
            entries = [_entry(obj, f"{path}: item {i}") for i, obj in enumerate(data)]
        else:
            raise UserError(f"{path}: expected an object id -> option or a list of predictions")
    out: dict[str, Any] = {}
    for qid, pred in entries:
        if qid in out:
            raise UserError(one_line(f"{path}: two predictions for id {qid!r}"))
        out[qid] = pred
    return out


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m projlab.evaluation.score_predictions", description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", required=True, help=f"one of {', '.join(BENCHMARKS)}")
    p.add_argument("--data", required=True, help="MMBench .tsv, SEED-Bench .json, or the MME folder")
    p.add_argument("--images", default=None, help="SEED-Bench image folder (default: the JSON's folder)")
    p.add_argument("--predictions", required=True, help=".json or .jsonl: question id -> answer")
    p.add_argument("--answers", default="text", choices=ANSWER_MODES,
                   help="text: answers read as the peers read them (default); keys: option keys "
                        "(projlab's predictions_<bench>.json)")
    p.add_argument("--out", default=None, help="also write the scores to this JSON file")
    p.add_argument("--verify-images", action="store_true", help="decode every image (fails on a broken one)")
    return p


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    bench = args.bench.strip().lower()
    if bench not in BENCHMARKS:
        raise UserError(f"unknown benchmark {args.bench!r} (choose from {', '.join(BENCHMARKS)})")
    predictions = read_predictions(args.predictions)
    records = load_benchmark(bench, args.data, images=args.images, verify=args.verify_images)
    scores = score_benchmark(bench, records, predictions, answers=args.answers)
    print(json.dumps(scores, indent=2))
    if args.out:
        try:
            write_json(args.out, scores)
        except OSError as err:
            raise UserError(one_line(f"cannot write {args.out}: {err}")) from None
    return scores


if __name__ == "__main__":
    main(sys.argv[1:])
