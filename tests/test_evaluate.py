"""`make eval`: a tiny-preset checkpoint answers a benchmark file end to end, and the scores land in its
results.json without losing what was there."""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import TINY_RUN
from projlab.data import spatial

pytestmark = pytest.mark.slow


def _b64(objects) -> str:
    buf = io.BytesIO()
    spatial.render(objects, 112).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_checkpoint_scores_an_mmbench_file_per_category(runs_dir, tmp_path):
    subprocess.run([sys.executable, "-m", "projlab.train", *TINY_RUN, "projector=c_abstractor",
                    "projector.num_visual_tokens=16", "sweep=e"], check=True, capture_output=True)
    run = runs_dir / "e" / "c_abstractor-m16-r112-s0-joint"
    rows = []
    coarse = ("object_localization", "spatial_relation", "counting", "attribute")  # MMBench's own names for some
    for i, item in enumerate(spatial.generate("mmb", 2, seed=3, categories=coarse)):
        cat = {"object_localization": "object_localization", "spatial_relation": "spatial_relationship"}.get(
            item.category, item.category)
        rows.append({"index": i, "question": item.question, "hint": "", **item.options, "answer": item.answer,
                     "category": cat, "image": _b64(item.objects)})
    tsv = tmp_path / "mmb.tsv"
    pd.DataFrame(rows).to_csv(tsv, sep="\t", index=False)
    proc = subprocess.run([sys.executable, "-m", "projlab.evaluation.evaluate", "--run", str(run), "--bench",
                           "mmbench", "--data", str(tsv)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "spatial_relationship" in proc.stdout and "counting" in proc.stdout
    record = json.loads((run / "results.json").read_text())
    scores = record["metrics"]["benchmarks"]["mmbench"]
    assert record["status"] == "completed" and record["metrics"]["accuracy"] is not None  # kept
    assert scores["answered_by"] == "likelihood"
    assert set(scores["per_category"]) == {"object_localization", "spatial_relationship", "counting", "attribute"}
    assert all(v["n"] == 2 for v in scores["per_category"].values())
    preds = json.loads((run / "predictions_mmbench.json").read_text())
    assert len(preds) == 8 * 4  # every circular copy answered
    bad = subprocess.run([sys.executable, "-m", "projlab.evaluation.evaluate", "--run", str(run), "--bench",
                          "mmbench", "--data", str(tmp_path / "none.tsv")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "none.tsv" in bad.stderr
