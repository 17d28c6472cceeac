"""Benchmark file formats (MMBench TSV, SEED-Bench JSON, MME folders) and their scoring rules, on tiny
hand-built files with real images; figures are computed by hand."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from projlab.errors import UserError
from projlab.evaluation.benchmarks import load_benchmark, records_to_answer, score_benchmark
from projlab.evaluation.mmbench import circular_expand, is_spatial, load_mmbench, score_mmbench
from projlab.evaluation.mme import load_mme, score_mme
from projlab.evaluation.seed import load_seed, score_seed

RED, GREEN, BLUE, WHITE = (220, 40, 40), (40, 180, 60), (60, 100, 240), (250, 250, 250)


def image_bytes(colour, fmt="PNG", size=(12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def b64(colour, fmt="PNG") -> str:
    return base64.b64encode(image_bytes(colour, fmt)).decode()


def write_tsv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def centre(img: Image.Image) -> tuple[int, int, int]:
    return img.getpixel((img.width // 2, img.height // 2))


def assert_one_line_error(err: pytest.ExceptionInfo, *parts: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, (part, msg)


# ---------------------------------------------------------------- MMBench

BASE_ROWS = [
    {"index": 0, "question": "where is the circle?", "hint": "Look at the whole picture.", "A": "top-left",
     "B": "top-right", "C": "bottom-left", "D": "bottom-right", "answer": "C", "category": "object_localization",
     "l2-category": "finegrained_perception (instance-level)", "image": b64(RED)},
    {"index": 1, "question": "is the square left of the cross?", "hint": np.nan, "A": "yes", "B": "no",
     "C": np.nan, "D": np.nan, "answer": "B", "category": "spatial_relationship",
     "l2-category": "finegrained_perception (cross-instance)", "image": b64(GREEN, "JPEG")},
    {"index": 2, "question": "what is the topic?", "hint": np.nan, "A": "art", "B": "sport", "C": "None",
     "D": np.nan, "answer": "A", "category": "image_topic", "l2-category": "coarse_perception",
     "image": b64(BLUE)},
]


@pytest.fixture
def mmbench_base(tmp_path) -> Path:
    return write_tsv(tmp_path / "mmbench_dev.tsv", BASE_ROWS)


def test_mmbench_reads_options_hint_category_and_image(mmbench_base):
    recs = {r.id: r for r in load_mmbench(mmbench_base)}
    assert list(recs) == ["0", "1", "2"]
    r0, r1, r2 = recs["0"], recs["1"], recs["2"]
    assert r0.question == "Look at the whole picture.\nwhere is the circle?"
    assert r1.question == "is the square left of the cross?"  # no hint: nothing prepended
    assert r0.options == {"A": "top-left", "B": "top-right", "C": "bottom-left", "D": "bottom-right"}
    assert r1.options == {"A": "yes", "B": "no"}  # C/D empty -> absent
    assert r2.options == {"A": "art", "B": "sport", "C": "None"}  # "None" is text, not a missing value
    assert (r0.answer, r0.answer_text, r1.answer) == ("C", "bottom-left", "B")
    assert (r0.category, r0.l2_category) == ("object_localization", "finegrained_perception (instance-level)")
    img = r0.image()
    assert img.mode == "RGB" and img.size == (12, 10) and centre(img) == RED
    jpeg = r1.image()
    assert jpeg.size == (12, 10) and all(abs(a - b) <= 8 for a, b in zip(centre(jpeg), GREEN))
    assert is_spatial("spatial_relationship") and is_spatial("Object Localization") and is_spatial("object_localisation")
    assert not is_spatial("image_topic")


def test_mmbench_duplicate_index_is_an_error(tmp_path):
    rows = [dict(BASE_ROWS[0]), dict(BASE_ROWS[1]), dict(BASE_ROWS[2], index=1)]
    with pytest.raises(UserError) as err:
        load_mmbench(write_tsv(tmp_path / "dup.tsv", rows))
    assert_one_line_error(err, "mmbench", "duplicate index 1")


def test_mmbench_undecodable_image_names_the_index(tmp_path):
    png = image_bytes(RED)
    rows = [
        dict(BASE_ROWS[0], index=7, image="not base64 at all !!"),
        dict(BASE_ROWS[0], index=8, image=base64.b64encode(b"plain text, not an image").decode()),
        dict(BASE_ROWS[0], index=9, image=base64.b64encode(png[: len(png) // 2]).decode()),  # truncated
    ]
    recs = load_mmbench(write_tsv(tmp_path / "bad.tsv", rows))  # lazy: reading works, decoding fails
    with pytest.raises(UserError) as err:
        recs[0].image()
    assert_one_line_error(err, "mmbench", "index 7", "base64")
    with pytest.raises(UserError) as err:
        recs[1].image()
    assert_one_line_error(err, "mmbench", "index 8", "cannot be decoded")
    with pytest.raises(UserError) as err:
        recs[2].image()
    assert_one_line_error(err, "mmbench", "index 9", "cannot be decoded")
    with pytest.raises(UserError) as err:
        load_mmbench(tmp_path / "bad.tsv", verify=True)
    assert_one_line_error(err, "index 7")


def test_mmbench_generated_rotations_move_the_answer(mmbench_base):
    recs = load_mmbench(mmbench_base)
    expanded = circular_expand(recs)
    assert [r.id for r in expanded] == ["0-r0", "0-r1", "0-r2", "0-r3", "1-r0", "1-r1", "2-r0", "2-r1", "2-r2"]
    by_id = {r.id: r for r in expanded}
    assert by_id["0-r0"].options == recs[0].options and by_id["0-r0"].answer == "C"
    assert by_id["0-r1"].options == {"A": "top-right", "B": "bottom-left", "C": "bottom-right", "D": "top-left"}
    assert [by_id[f"0-r{k}"].answer for k in range(4)] == ["C", "B", "A", "D"]
    assert all(r.answer_text == "bottom-left" for r in expanded if r.group == "0")
    assert [by_id[f"1-r{k}"].answer for k in range(2)] == ["B", "A"]
    assert all(r.question == recs[0].question for r in expanded if r.group == "0")
    assert centre(by_id["0-r2"].image()) == RED
    assert records_to_answer("mmbench", recs) == expanded
    assert circular_expand(expanded) == expanded  # idempotent


def test_mmbench_circular_scoring_with_generated_rotations(mmbench_base):
    recs = load_mmbench(mmbench_base)
    preds = {
        "0-r0": "C", "0-r1": "B", "0-r2": "A", "0-r3": "A",  # 3 of 4 rotations right: wrong under circular
        "1-r0": "b", "1-r1": "A",  # lower case accepted
        "2": "A", "2-r1": "C", "2-r2": "B",  # "2" stands for "2-r0"
    }
    s = score_mmbench(recs, preds)
    assert s["overall"] == {"accuracy": pytest.approx(2 / 3), "plain_accuracy": 1.0, "n": 3}
    assert s["per_category"]["object_localization"] == {"accuracy": 0.0, "plain_accuracy": 1.0, "n": 1}
    assert s["per_category"]["spatial_relationship"] == {"accuracy": 1.0, "plain_accuracy": 1.0, "n": 1}
    assert s["per_category"]["image_topic"]["accuracy"] == 1.0
    assert s["spatial"]["accuracy"] == 0.5 and s["spatial"]["n"] == 2
    assert set(s["spatial"]["categories"]) == {"object_localization", "spatial_relationship"}
    assert s["others"]["accuracy"] == 1.0 and set(s["others"]["categories"]) == {"image_topic"}
    assert s["per_l2_category"]["coarse_perception"]["n"] == 1
    assert (s["circular_copies"], s["n_predictions_expected"], s["n_predictions_missing"]) == ("generated", 9, 0)
    json.dumps(s)  # plain, JSON-serialisable

    # only the plain answers: plain accuracy as before, every question fails circular (missing = wrong)
    plain = score_mmbench(recs, {"0": "C", "1": "B", "2": "B"})
    assert plain["overall"] == {"accuracy": 0.0, "plain_accuracy": pytest.approx(2 / 3), "n": 3}
    assert plain["n_predictions_missing"] == 6


def test_mmbench_rotated_copies_in_the_file_are_grouped(tmp_path):
    q = dict(BASE_ROWS[0], hint=np.nan)
    opts = ["top-left", "top-right", "bottom-left", "bottom-right"]
    rows = []
    for k, answer in enumerate("ADCB"):  # the answer "top-left" followed through the shifts
        shifted = dict(zip("ABCD", opts[k:] + opts[:k]))
        rows.append(dict(q, index=5 + k * 1_000_000, answer=answer, **shifted,
                         image=q["image"] if k == 0 else "5"))  # VLMEvalKit: copies name the base row's image
    two = dict(BASE_ROWS[1])
    rows += [dict(two, index=6), dict(two, index=1_000_006, A="no", B="yes", answer="A")]
    recs = load_mmbench(write_tsv(tmp_path / "circular.tsv", rows))
    assert [(r.id, r.group, r.rotation) for r in recs][:4] == [
        ("5", "5", 0), ("1000005", "5", 1), ("2000005", "5", 2), ("3000005", "5", 3)]
    assert all(r.answer_text == "top-left" for r in recs if r.group == "5")
    assert centre(recs[2].image()) == RED  # image resolved through the reference to row 5
    assert circular_expand(recs) == recs  # the file's copies are the ones to answer

    preds = {"5": "A", "1000005": "D", "2000005": "C", "3000005": "A",  # 3 of 4 right -> wrong
             "6": "B", "1000006": "A"}
    s = score_mmbench(recs, preds)
    assert s["overall"] == {"accuracy": 0.5, "plain_accuracy": 1.0, "n": 2}
    assert s["per_category"]["object_localization"]["accuracy"] == 0.0
    assert s["per_category"]["spatial_relationship"]["accuracy"] == 1.0
    assert s["circular_copies"] == "file" and s["n_predictions_expected"] == 6
    s_all = score_mmbench(recs, dict(preds, **{"3000005": "B"}))
    assert s_all["overall"]["accuracy"] == 1.0


def test_mmbench_bad_predictions_and_missing_answers(mmbench_base, tmp_path):
    recs = load_mmbench(mmbench_base)
    with pytest.raises(UserError) as err:
        score_mmbench(recs, {"99": "A"})
    assert_one_line_error(err, "unknown question id", "99")
    with pytest.raises(UserError) as err:
        score_mmbench(recs, {"1-r0": "C"})  # question 1 has only A and B
    assert_one_line_error(err, "invalid prediction", "'C'", "1-r0")
    with pytest.raises(UserError) as err:
        score_mmbench(recs, {"0-r0": "E"})
    assert_one_line_error(err, "invalid prediction")

    no_answer = write_tsv(tmp_path / "test.tsv", [{k: v for k, v in r.items() if k != "answer"} for r in BASE_ROWS])
    test_recs = load_mmbench(no_answer)
    assert all(r.answer is None for r in test_recs)
    assert len(circular_expand(test_recs)) == 9
    with pytest.raises(UserError) as err:
        score_mmbench(test_recs, {})
    assert_one_line_error(err, "no answer")


# ---------------------------------------------------------------- SEED-Bench

SEED_TYPES = {"Scene Understanding": 1, "Instance Identity": 2, "Instance Attributes": 3, "Instance Location": 4,
              "Instances Counting": 5, "Spatial Relation": 6, "Instance Interaction": 7, "Visual Reasoning": 8,
              "Text Understanding": 9, "Action Recognition": 10}


def seed_question(qid, type_id, answer, data_id, data_type="image"):
    return {"question_id": qid, "question": f"question {qid}?", "choice_a": "a", "choice_b": "b",
            "choice_c": "c", "choice_d": "d", "answer": answer, "question_type_id": type_id,
            "data_id": data_id, "data_type": data_type}


@pytest.fixture
def seed_files(tmp_path) -> tuple[Path, Path]:
    images = tmp_path / "SEED-Bench-image"
    images.mkdir()
    (images / "1.png").write_bytes(image_bytes(RED))
    (images / "2.jpg").write_bytes(image_bytes(BLUE, "JPEG"))
    questions = [
        seed_question("101", 6, "A", "1.png"),
        seed_question("102", 6, "B", "2.jpg"),
        seed_question("103", 4, "C", "1.png"),
        seed_question("104", 1, "D", "2.jpg"),
        seed_question("105", 1, "A", "missing.png"),
        seed_question("v1", 10, "A", "video/clip.mp4", data_type="video"),
    ]
    path = tmp_path / "SEED-Bench.json"
    path.write_text(json.dumps({"questions": questions, "question_type": SEED_TYPES}))
    return path, images


def test_seed_reads_image_questions_only(seed_files):
    path, images = seed_files
    recs = load_seed(path, images)
    assert [r.id for r in recs] == ["101", "102", "103", "104", "105"]  # the video question is dropped
    assert recs[0].options == {"A": "a", "B": "b", "C": "c", "D": "d"} and recs[0].answer == "A"
    assert [r.category for r in recs] == ["Spatial Relation", "Spatial Relation", "Instance Location",
                                          "Scene Understanding", "Scene Understanding"]
    assert centre(recs[0].image()) == RED and recs[1].image().size == (12, 10)
    with pytest.raises(UserError) as err:
        recs[4].image()
    assert_one_line_error(err, "seed", "index 105", "missing.png")


def test_seed_scores_per_question_type(seed_files):
    path, images = seed_files
    recs = load_seed(path, images)
    s = score_seed(recs, {"101": "A", "102": "A", "103": "C", "104": "D", "105": "B"})
    assert s["overall"] == {"accuracy": 0.6, "n": 5}
    assert s["per_category"] == {
        "Instance Location": {"accuracy": 1.0, "n": 1},
        "Scene Understanding": {"accuracy": 0.5, "n": 2},
        "Spatial Relation": {"accuracy": 0.5, "n": 2},
    }
    assert s["spatial"]["accuracy"] == pytest.approx(2 / 3) and s["spatial"]["n"] == 3
    assert set(s["spatial"]["categories"]) == {"Spatial Relation", "Instance Location"}
    assert s["others"] == {"accuracy": 0.5, "n": 2, "categories": {"Scene Understanding": {"accuracy": 0.5, "n": 2}}}
    with pytest.raises(UserError) as err:
        score_seed(recs, {"v1": "A"})  # the video question is not scored
    assert_one_line_error(err, "unknown question id", "v1")


# ---------------------------------------------------------------- MME

def write_mme_task(folder: Path, items: dict[str, list[tuple[str, str]]], split: bool, fmt="PNG") -> None:
    """One sub-task: {image stem: [(question, Yes|No), ...]}, split into images/ + questions_answer_YN/
    or side by side."""
    img_dir = folder / "images" if split else folder
    txt_dir = folder / "questions_answer_YN" if split else folder
    img_dir.mkdir(parents=True, exist_ok=True)
    txt_dir.mkdir(parents=True, exist_ok=True)
    ext = ".png" if fmt == "PNG" else ".jpg"
    for stem, qa in items.items():
        (img_dir / f"{stem}{ext}").write_bytes(image_bytes(WHITE, fmt))
        (txt_dir / f"{stem}.txt").write_text("".join(f"{q}\t{a}\n" for q, a in qa))


@pytest.fixture
def mme_root(tmp_path) -> Path:
    root = tmp_path / "MME_Benchmark_release_version"
    yes_no = [("Is there a dog in this image? Please answer yes or no.", "Yes"),
              ("Is there a cat in this image? Please answer yes or no.", "No")]
    write_mme_task(root / "existence", {"a": yes_no, "b": yes_no}, split=False, fmt="JPEG")
    write_mme_task(root / "position", {"c": yes_no[::-1]}, split=False)
    write_mme_task(root / "artwork", {"d": yes_no, "e": yes_no}, split=True, fmt="JPEG")
    write_mme_task(root / "code_reasoning", {"f": yes_no}, split=False)
    (root / "readme.txt").write_text("MME benchmark, not a sub-task\n")
    return root


def test_mme_reads_both_layouts(mme_root):
    recs = load_mme(mme_root)
    assert len(recs) == 12
    by_id = {r.id: r for r in recs}
    assert set(r.category for r in recs) == {"existence", "position", "artwork", "code_reasoning"}
    e = by_id["existence/a/0"]
    assert e.question.startswith("Is there a dog") and e.options == {"A": "Yes", "B": "No"}
    assert (e.answer_text, by_id["existence/a/1"].answer_text, by_id["position/c/0"].answer_text) == ("Yes", "No", "No")
    assert e.group == "existence/a" and by_id["artwork/e/1"].group == "artwork/e"
    assert centre(by_id["artwork/d/0"].image())[0] > 240 and by_id["position/c/1"].image().size == (12, 10)
    single = load_mme(mme_root / "artwork")  # one sub-task folder on its own
    assert [r.id for r in single] == ["artwork/d/0", "artwork/d/1", "artwork/e/0", "artwork/e/1"]


def test_mme_acc_acc_plus_and_score(mme_root):
    recs = load_mme(mme_root)
    preds = {
        "existence/a/0": "Yes", "existence/a/1": "no",  # image a: both right
        "existence/b/0": "Yes", "existence/b/1": "Yes",  # image b: one right
        "position/c/0": "No", "position/c/1": "A",  # both right ("A" = Yes)
        "artwork/d/0": "No", "artwork/d/1": "Yes",  # both wrong
        "artwork/e/0": "Yes", "artwork/e/1": "No",  # both right
        "code_reasoning/f/0": "Yes",  # f/1 unanswered: wrong
    }
    s = score_mme(recs, preds)
    pc = s["per_category"]
    assert pc["existence"] == {"accuracy": 0.75, "acc_plus": 0.5, "score": 125.0, "n": 4, "n_images": 2}
    assert pc["position"]["score"] == 200.0
    assert (pc["artwork"]["accuracy"], pc["artwork"]["acc_plus"], pc["artwork"]["score"]) == (0.5, 0.5, 100.0)
    assert (pc["code_reasoning"]["accuracy"], pc["code_reasoning"]["acc_plus"], pc["code_reasoning"]["score"]) == (0.5, 0.0, 50.0)
    assert s["overall"] == {"perception": 425.0, "cognition": 50.0, "total": 475.0, "accuracy": pytest.approx(8 / 12), "n": 12}
    assert s["spatial"] == {"score": 200.0, "categories": {"position": pc["position"]}}
    assert "count" in s["perception_tasks_missing"] and "existence" not in s["perception_tasks_missing"]
    assert s["n_predictions_missing"] == 1
    with pytest.raises(UserError) as err:
        score_mme(recs, {"existence/a/0": "maybe"})
    assert_one_line_error(err, "invalid prediction", "maybe")


def test_mme_malformed_line_and_missing_image(tmp_path):
    bad = tmp_path / "count"
    write_mme_task(bad, {"g": [("How many? Please answer yes or no.", "Yes")]}, split=False)
    (bad / "g.txt").write_text("How many dogs are there? Please answer yes or no. Yes\n")
    with pytest.raises(UserError) as err:
        load_mme(tmp_path)
    assert_one_line_error(err, "mme", "g.txt:1")
    (bad / "g.txt").write_text("Are there two dogs?\tYes\n")
    (bad / "h.txt").write_text("Are there two cats?\tNo\n")  # no h.* image
    recs = load_mme(tmp_path)
    assert recs[0].category == "count"
    with pytest.raises(UserError) as err:
        recs[1].image()
    assert_one_line_error(err, "mme", "index count/h")


# ---------------------------------------------------------------- registry and CLI

def test_registry_dispatch(mmbench_base, mme_root):
    recs = load_benchmark("mmbench", mmbench_base)
    assert score_benchmark("mmbench", recs, {})["overall"]["n"] == 3
    assert len(load_benchmark("mme", mme_root)) == 12
    with pytest.raises(UserError):
        load_benchmark("mmstar", mmbench_base)
    with pytest.raises(UserError):
        load_benchmark("mme", mme_root, images=mme_root)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "projlab.evaluation.score_predictions", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_cli_end_to_end(mmbench_base, seed_files, mme_root, tmp_path):
    preds = tmp_path / "mmbench_preds.json"
    preds.write_text(json.dumps({"0-r0": "C", "0-r1": "B", "0-r2": "A", "0-r3": "A", "1-r0": "B", "1-r1": "A",
                                 "2-r0": "A", "2-r1": "C", "2-r2": "B"}))
    out = tmp_path / "scores" / "mmbench.json"
    res = run_cli("--bench", "mmbench", "--data", mmbench_base, "--predictions", preds, "--out", out,
                  "--verify-images")
    assert res.returncode == 0, res.stderr
    printed = json.loads(res.stdout)
    assert printed["overall"] == {"accuracy": pytest.approx(2 / 3), "plain_accuracy": 1.0, "n": 3}
    assert json.loads(out.read_text()) == printed

    seed_json, images = seed_files
    seed_preds = tmp_path / "seed_preds.jsonl"
    seed_preds.write_text("".join(json.dumps({"question_id": q, "prediction": p}) + "\n"
                                  for q, p in [("101", "A"), ("102", "A"), ("103", "C"), ("104", "D"), ("105", "B")]))
    res = run_cli("--bench", "seed", "--data", seed_json, "--images", images, "--predictions", seed_preds)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["overall"] == {"accuracy": 0.6, "n": 5}

    mme_preds = tmp_path / "mme_preds.jsonl"
    mme_preds.write_text("\n".join(json.dumps({r.id: r.answer_text}) for r in load_mme(mme_root)))
    res = run_cli("--bench", "mme", "--data", mme_root, "--predictions", mme_preds)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["overall"]["total"] == 4 * 200.0


@pytest.mark.parametrize(
    "case, expect",
    [
        ("unknown_bench", "unknown benchmark"),
        ("missing_data", "not found"),
        ("unknown_id", "unknown question id"),
        ("not_json", "not JSON"),
        ("conflicting", "two different predictions"),
        ("missing_argument", "--predictions"),
    ],
)
def test_cli_bad_input_is_one_error_line(case, expect, mmbench_base, tmp_path):
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"0": "A"}))
    args = ["--bench", "mmbench", "--data", mmbench_base, "--predictions", preds]
    if case == "unknown_bench":
        args[1] = "mmbenchx"
    elif case == "missing_data":
        args[3] = tmp_path / "nowhere.tsv"
    elif case == "unknown_id":
        preds.write_text(json.dumps({"12345": "A"}))
    elif case == "not_json":
        preds.write_text("{not json")
    elif case == "conflicting":  # JSON lines under a .json name, one id answered twice, differently
        preds.write_text(json.dumps({"id": "0", "prediction": "A"}) + "\n" + json.dumps({"id": "0", "prediction": "B"}))
    elif case == "missing_argument":
        args = args[:4]
    res = run_cli(*args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
