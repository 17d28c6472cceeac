"""Predictions as the peers write them (free text, VLMEvalKit's TSV, SEED-Bench's results.json, MME's results
folder) read as the peers read them; the figures are worked out by hand in the comments."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from projlab.errors import UserError
from projlab.evaluation.answers import read_option, read_yes_no
from projlab.evaluation.mme import load_mme, read_results_folder, score_mme
from projlab.evaluation.mmbench import load_mmbench, score_mmbench
from projlab.evaluation.seed import load_seed, score_seed
from test_benchmark_formats import (BASE_ROWS, RED, SEED_TYPES, assert_one_line_error, image_bytes, run_cli,
                                    seed_question, write_mme_task, write_tsv)

CORNERS = {"A": "top-left", "B": "top-right", "C": "bottom-left", "D": "bottom-right"}


@pytest.mark.parametrize("text, key, how", [
    ("A", "A", "letter"),
    ("B.", "B", "letter"),
    ("(C)", "C", "letter"),
    ("Answer: D", "D", "letter"),
    ("The answer is B", "B", "letter"),
    ("The correct answer is **C**.", "C", "letter"),
    ("The answer is B, as the circle sits in the upper corner on the right", "B", "answer_is"),
    ("The answer is C because A is wrong", "C", "answer_is"),
    ("It is bottom-left.", "C", "option_text"),
    ("Top-Right", "B", "option_text"),
    ("b", None, "unreadable"),  # letters are case-sensitive
    ("The answer is blue", None, "unreadable"),
    ("A cat sits on the mat", None, "unreadable"),  # "A" early in a longer answer is the article
    ("B. The circle sits in the upper corner on the right", None, "unreadable"),  # not among the last four words
    ("A or B", None, "unreadable"),
    ("bottom-left or bottom-right", None, "unreadable"),
    ("E", None, "unreadable"),  # not an option of this question
    ("Z", None, "declined"),
])
def test_an_option_is_read_as_can_infer_reads_it(text, key, how):
    assert read_option(text, CORNERS) == (key, how)


@pytest.mark.parametrize("text, key", [
    ("Yes", "A"), ("no", "B"), ("NO", "B"), ("No.", "B"), ("yes, there is", "A"), ('"Yes"', "A"),
    ("Yes, but no cat", "A"), ("A", None), ("B", None), ("nope", None), ("y", None), ("There is no dog.", None),
    ("", None),
])
def test_mme_reads_yes_or_no_as_the_first_word(text, key):
    assert read_yes_no(text, {"A": "Yes", "B": "No"})[0] == key


def mmbench_rows() -> list[dict]:
    """Questions 5 (four copies), 6 (two), 7 (no answer), 9, 10, and copies of a question 8 whose base
    row is absent."""
    q = dict(BASE_ROWS[0], hint=np.nan)
    corners = list(CORNERS.values())
    rows = []
    for k, answer in enumerate("ADCB"):  # "top-left" followed through the shifts
        rows.append(dict(q, index=5 + k * 1_000_000, answer=answer, **dict(zip("ABCD", corners[k:] + corners[:k])),
                         image=q["image"] if k == 0 else "5"))
    two = dict(BASE_ROWS[1])
    rows += [dict(two, index=6), dict(two, index=1_000_006, A="no", B="yes", answer="A")]
    rows += [dict(q, index=7, answer=np.nan)]
    rows += [dict(q, index=2_000_008), dict(q, index=3_000_008)]
    rows += [dict(q, index=9), dict(q, index=10)]
    return rows


# one answer per row of mmbench_rows(), in the forms models write
MMBENCH_ANSWERS = {5: "A.", 1_000_005: "The answer is D", 2_000_005: "top-left", 3_000_005: "(B)",  # all right
                   6: "B", 1_000_006: "a",  # lower case: unread, so question 6 fails circular, not plain
                   7: "A",  # the row has no answer: wrong
                   2_000_008: "C", 3_000_008: "C",  # no base row: not a question
                   9: "I cannot tell from the image", 10: "C"}


def test_mmbench_free_text_scored_as_the_peers_score_it(tmp_path):
    data = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", mmbench_rows())
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({str(k): v for k, v in MMBENCH_ANSWERS.items()}))
    res = run_cli("--bench", "mmbench", "--data", data, "--predictions", preds)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    # questions 5, 6, 7, 9, 10; circular: 5 and 10 right; plain: 5, 6 and 10
    assert s["overall"] == {"accuracy": 0.4, "plain_accuracy": 0.6, "n": 5}
    assert (s["n_predictions_expected"], s["n_predictions_missing"]) == (9, 0)
    assert (s["n_without_answer"], s["n_copies_without_base"]) == (1, 2)
    assert s["reading"] == {
        "rule": "can_infer",
        "read_as": {"letter": 6, "option_text": 1, "unreadable": 2},
        "n_unreadable": 2,
        "unreadable_examples": [{"id": "1000006", "prediction": "a"},
                                {"id": "9", "prediction": "I cannot tell from the image"}],
    }


def test_mmbench_vlmevalkit_predictions_file(tmp_path):
    data = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", mmbench_rows())
    as_json = tmp_path / "preds.json"
    as_json.write_text(json.dumps({str(k): v for k, v in MMBENCH_ANSWERS.items()}))
    preds = pd.DataFrame([{k: v for k, v in row.items() if k != "image"} | {"prediction": MMBENCH_ANSWERS[row["index"]]}
                          for row in mmbench_rows()])
    as_tsv = tmp_path / "model_MMBench_DEV_EN.tsv"  # VLMEvalKit's form: the data rows and a prediction column
    preds.to_csv(as_tsv, sep="\t", index=False)
    res_tsv = run_cli("--bench", "mmbench", "--data", data, "--predictions", as_tsv)
    res_json = run_cli("--bench", "mmbench", "--data", data, "--predictions", as_json)
    assert res_tsv.returncode == 0, res_tsv.stderr
    assert json.loads(res_tsv.stdout) == json.loads(res_json.stdout)
    assert json.loads(res_tsv.stdout)["overall"]["accuracy"] == 0.4


def test_mmbench_keys_and_rows_without_answers(tmp_path):
    recs = load_mmbench(write_tsv(tmp_path / "dev.tsv", mmbench_rows()))
    keys = {"5": "A", "1000005": "D", "2000005": "C", "3000005": "B", "6": "B", "1000006": "A", "7": "A",
            "9": "C", "10": "C"}
    s = score_mmbench(recs, keys)  # the model side's keys: the missing answer of 7 still scores wrong
    assert s["overall"] == {"accuracy": 0.8, "plain_accuracy": 0.8, "n": 5}
    assert s["reading"]["rule"] == "option_key" and s["n_without_answer"] == 1


def seed_records(tmp_path: Path) -> Path:
    (tmp_path / "1.png").write_bytes(image_bytes(RED))
    questions = [seed_question("101", 6, "A", "1.png"), seed_question("102", 6, "B", "1.png"),
                 seed_question("103", 4, "C", "1.png"), seed_question("104", 1, "D", "1.png"),
                 seed_question("105", 1, "A", "1.png"), seed_question("106", 1, None, "1.png"),
                 seed_question("v1", 10, "A", "video/clip.mp4", data_type="video")]
    path = tmp_path / "SEED-Bench.json"
    path.write_text(json.dumps({"questions": questions, "question_type": SEED_TYPES}))
    return path


SEED_ANSWERS = {"101": "A", "102": "The answer is B", "103": "c", "104": "D", "105": None, "106": "A"}


def test_seed_free_text_and_a_question_without_answer(tmp_path):
    s = score_seed(load_seed(seed_records(tmp_path)), SEED_ANSWERS, answers="text")
    # right: 101, 102, 103 ("c" is option C's text), 104; wrong: 105 (no text), 106 (no answer in the data)
    assert s["overall"] == {"accuracy": pytest.approx(4 / 6), "n": 6}
    assert s["per_category"]["Spatial Relation"] == {"accuracy": 1.0, "n": 2}
    assert s["per_category"]["Scene Understanding"] == {"accuracy": pytest.approx(1 / 3), "n": 3}
    assert (s["n_without_answer"], s["n_predictions_missing"]) == (1, 0)
    assert s["reading"]["read_as"] == {"letter": 4, "not_text": 1, "option_text": 1}
    assert s["reading"]["unreadable_examples"] == [{"id": "105", "prediction": None}]


@pytest.mark.parametrize("line_end", ["\n", ",\n"])  # eval.py's results.json; the leaderboard's files
def test_seed_results_json_as_eval_py_writes_it(tmp_path, line_end):
    data = seed_records(tmp_path)
    lines = [*SEED_ANSWERS.items(), ("v1", "A"), ("101", "A")]  # a video question, a line appended by a rerun
    results = tmp_path / "results" / "results.json"
    results.parent.mkdir()
    results.write_text(line_end.join(json.dumps({"question_id": q, "prediction": p}) for q, p in lines))
    res = run_cli("--bench", "seed", "--data", data, "--predictions", results)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert s["overall"] == {"accuracy": pytest.approx(4 / 6), "n": 6}  # as the test above
    assert (s["n_predictions_not_scored"], s["n_predictions_missing"]) == (1, 0)


YES_NO = [("Is there a dog in this image? Please answer yes or no.", "Yes"),
          ("Is there a cat in this image? Please answer yes or no.", "No")]


def mme_tasks(root: Path) -> Path:
    write_mme_task(root / "existence", {"a": YES_NO, "b": YES_NO}, split=False, fmt="JPEG")
    write_mme_task(root / "artwork", {"d": YES_NO, "e": YES_NO}, split=True, fmt="JPEG")
    return root


def mme_download(tmp_path: Path) -> Path:
    """MME/ as the download unpacks: MME_Benchmark_release_version/ with the sub-tasks and eval_tool/
    (readme.txt, calculation.py's template results) beside them, and eval_tool/ beside the folder too."""
    outer = tmp_path / "MME"
    root = mme_tasks(outer / "MME_Benchmark_release_version")
    for tool in (root / "eval_tool", outer / "eval_tool"):
        (tool / "Your_Results").mkdir(parents=True)
        (tool / "readme.txt").write_text("Put your results in Your_Results/, then run calculation.py\n")
        (tool / "calculation.py").write_text("# MME's scoring script\n")
        (tool / "Your_Results" / "existence.txt").write_text(f"a.jpg\t{YES_NO[0][0]}\tYes\n")
    return outer


def test_mme_reads_the_download_as_it_comes(tmp_path):
    outer = mme_download(tmp_path)
    inner = load_mme(outer / "MME_Benchmark_release_version")
    assert sorted({r.category for r in inner}) == ["artwork", "existence"] and len(inner) == 8
    assert [r.id for r in load_mme(outer)] == [r.id for r in inner]


def test_mme_calculation_results_folder_read_as_the_peers(tmp_path):
    data = mme_download(tmp_path) / "MME_Benchmark_release_version"
    results = tmp_path / "answers" / "model"
    results.mkdir(parents=True)
    (q0, _), (q1, _) = YES_NO
    (results / "existence.txt").write_text(
        f"a.jpg\t{q0}\tYes\tYes, there is a dog.\na.jpg\t{q1}\tNo\tNo.\n"  # image a: both right
        f"b.jpg\t{q0}\tYes\tA\nb.jpg\t{q1}\tNo\tno\n")  # "A" is no Yes
    (results / "artwork.txt").write_text(
        f"d.jpg\t{q0}\tYes\tyes\nd.jpg\t{q1}\tNo\tB\ne.jpg\t{q0}\tYes\tYes\ne.jpg\t{q1}\tNo\tnope\n")
    (results / "notes.txt").write_text("not a sub-task: calculation.py reads only the sub-tasks' files\n")

    res = run_cli("--bench", "mme", "--data", data, "--predictions", results)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    # existence: acc 3/4, acc+ 1/2 -> 125; artwork: acc 2/4, acc+ 0 -> 50
    assert s["per_category"]["existence"]["score"] == 125.0 and s["per_category"]["artwork"]["score"] == 50.0
    assert s["overall"]["perception"] == 175.0 and s["overall"]["accuracy"] == 5 / 8
    assert s["reading"]["rule"] == "yes_no_first_word"
    assert s["reading"]["read_as"] == {"first_word": 5, "unreadable": 3}
    assert [e["prediction"] for e in s["reading"]["unreadable_examples"]] == ["B", "nope", "A"]

    records = load_mme(data)
    (results / "existence.txt").write_text(f"c.jpg\t{q0}\tYes\tYes\n")
    with pytest.raises(UserError) as err:
        read_results_folder(results, records)
    assert_one_line_error(err, "existence.txt:1", "'c.jpg'")


def test_mme_letters_are_keys_for_the_model_side_and_wrong_as_text(tmp_path):
    records = load_mme(mme_tasks(tmp_path / "MME"))
    letters = {r.id: r.answer for r in records}  # what option likelihood hands over: "A" = Yes, "B" = No
    assert score_mme(records, letters)["overall"]["perception"] == 400.0
    as_text = score_mme(records, letters, answers="text")
    assert as_text["overall"]["perception"] == 0.0 and as_text["reading"]["n_unreadable"] == 8
    words = {r.id: r.answer_text for r in records}
    assert score_mme(records, words, answers="text")["overall"]["perception"] == 400.0
