"""Score a predictions file against a public benchmark, without any model.

    python -m projlab.evaluation.score_predictions --bench mmbench|seed|mme --data PATH \
        [--images FOLDER (seed)] --predictions FILE|FOLDER [--answers text|keys] [--out SCORES.json] \
        [--verify-images]

Predictions, in the peers' forms or ours: a .json object {question id: answer}; a .json list, .jsonl or
JSON lines under a .json name (SEED-Bench's results.json; a comma may end each line, as in its leaderboard
files) of objects {"id": ..., "prediction": ...} (also accepted: "question_id"/"index" for the id,
"option"/"pred"/"choice" for the answer) or one-key objects {id: answer}; a .tsv/.csv with `index` and
`prediction` columns (VLMEvalKit's predictions file); for MME, calculation.py's results folder. A repeated
id is taken once if its answers agree. MMBench ids are the TSV index, or "<index>-r<k>" for the circular
shifts built when the file has none. Answers are read as the peers read them (`--answers text`, the
default: `projlab.evaluation.answers`); `--answers keys` scores projlab's own predictions_<bench>.json
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
from projlab.evaluation.benchmarks import BENCHMARKS, load_benchmark, score_benchmark, unscored_ids
from projlab.evaluation.mme import read_results_folder
from projlab.evaluation.records import one_line
from projlab.io import write_json

ID_KEYS = ("id", "question_id", "index")
OPTION_KEYS = ("prediction", "option", "pred", "choice")
TABLE_SUFFIXES = {".tsv": "\t", ".csv": ","}


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


def _json_lines(path: Path, text: str) -> list[tuple[str, Any]]:
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip().removesuffix(",")
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise UserError(one_line(f"{path}:{lineno}: not JSON: {err}")) from None
        entries.append(_entry(obj, f"{path}:{lineno}"))
    return entries


def _json(path: Path, text: str) -> list[tuple[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError:  # SEED-Bench's eval.py writes JSON lines into results.json
        return _json_lines(path, text)
    if isinstance(data, dict) and any(k in data for k in ID_KEYS) and any(k in data for k in OPTION_KEYS):
        return [_entry(data, str(path))]  # JSON lines holding one line
    if isinstance(data, dict):
        return [(str(k), v) for k, v in data.items()]
    if isinstance(data, list):
        return [_entry(obj, f"{path}: item {i}") for i, obj in enumerate(data)]
    raise UserError(f"{path}: expected an object id -> option or a list of predictions")


def _table(path: Path) -> list[tuple[str, Any]]:
    import pandas as pd

    try:
        if path.suffix.lower() == ".xlsx":
            df = pd.read_excel(path, dtype=str, keep_default_na=False)
        else:
            df = pd.read_csv(path, sep=TABLE_SUFFIXES[path.suffix.lower()], dtype=str, keep_default_na=False)
    except ImportError as err:
        raise UserError(one_line(f"cannot read {path}: {err} (save it as .tsv)")) from None
    except Exception as err:  # pandas.errors.ParserError, UnicodeDecodeError, EmptyDataError...
        raise UserError(one_line(f"cannot read predictions {path} as a table: {err}")) from None
    missing = [c for c in ("index", "prediction") if c not in df.columns]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}")
    return list(zip(df["index"].str.strip(), df["prediction"]))


def read_predictions(path: str | Path) -> dict[str, Any]:
    """id -> answer from a predictions file (formats in the module docstring; MME's results folder is
    read by `projlab.evaluation.mme.read_results_folder`, which needs the records)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"predictions {path} is a folder: only MME's calculation.py results folder is read as one")
    if not path.is_file():
        raise UserError(f"predictions file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (*TABLE_SUFFIXES, ".xlsx"):
        entries = _table(path)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(one_line(f"cannot read predictions {path}: {err}")) from None
        entries = _json_lines(path, text) if suffix == ".jsonl" else _json(path, text)
    out: dict[str, Any] = {}
    for qid, pred in entries:
        if qid in out and out[qid] != pred:  # a rerun appends to SEED-Bench's results.json: same answers twice
            raise UserError(one_line(f"{path}: two different predictions for id {qid!r}"))
        out[qid] = pred
    return out


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m projlab.evaluation.score_predictions", description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", required=True, help=f"one of {', '.join(BENCHMARKS)}")
    p.add_argument("--data", required=True, help="MMBench .tsv, SEED-Bench .json, or the MME folder")
    p.add_argument("--images", default=None, help="SEED-Bench image folder (default: the JSON's folder)")
    p.add_argument("--predictions", required=True,
                   help=".json/.jsonl/.tsv/.csv: question id -> answer; for mme also calculation.py's results folder")
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
    records = load_benchmark(bench, args.data, images=args.images, verify=args.verify_images)
    if bench == "mme" and Path(args.predictions).is_dir():
        predictions = read_results_folder(args.predictions, records)
    else:
        predictions = read_predictions(args.predictions)
    unscored = unscored_ids(bench, args.data)
    scored = {k: v for k, v in predictions.items() if k.strip() not in unscored}
    scores = score_benchmark(bench, records, scored, answers=args.answers)
    if unscored:
        scores["n_predictions_not_scored"] = len(predictions) - len(scored)  # SEED-Bench's video questions
    print(json.dumps(scores, indent=2))
    if args.out:
        try:
            write_json(args.out, scores)
        except OSError as err:
            raise UserError(one_line(f"cannot write {args.out}: {err}")) from None
    return scores


if __name__ == "__main__":
    main(sys.argv[1:])
