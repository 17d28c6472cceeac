"""End-to-end arms on the tiny preset: results, determinism, resume, cache parity, LLaVA data, errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from tbparse import SummaryReader

from conftest import TINY_RUN
from llava_mix import write_mix
from projlab.data import spatial

pytestmark = pytest.mark.slow


def train(*overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    base = TINY_RUN
    if "data=llava" in overrides:  # its own data group: no split sizes
        base = [o for o in TINY_RUN if not o.startswith("data.")]
    keys = {o.split("=")[0] for o in overrides}
    base = [o for o in base if o.split("=")[0] not in keys]  # an override here replaces TINY_RUN's
    proc = subprocess.run(
        [sys.executable, "-m", "projlab.train", *base, *overrides], capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def results(runs: Path, sweep: str) -> dict:
    (run,) = (runs / sweep).iterdir()
    return json.loads((run / "results.json").read_text())


def losses(run_dir: Path) -> list[float]:
    df = SummaryReader(str(run_dir / "tb")).scalars
    return df[df.tag == "train/loss"].sort_values("step").value.tolist()


def test_an_arm_writes_results_events_and_checkpoint(runs_dir):
    proc = train("projector=c_abstractor", "projector.num_visual_tokens=16", "sweep=a", "trainer.progress_bar=true")
    assert "Training steps" in proc.stdout and "6/6" in proc.stdout  # the bar counts steps, not epochs
    assert "Epoch" not in proc.stdout
    r = results(runs_dir, "a")
    assert r["status"] == "completed"
    c, e, m = r["config"], r["efficiency"], r["metrics"]
    assert (c["projector"], c["num_visual_tokens"], c["resolution"], c["seed"]) == ("c_abstractor", 16, 112, 0)
    assert e["steps"] == 6 and e["samples"] == 6 * 8 and e["step_time_s"] > 0
    assert 0 < e["peak_tensor_mb"] < e["peak_rss_mb"]  # the model's own memory, below the process's
    assert e["projector_params"] > 0 and e["projector_flops"] > 0 and e["llm_seq_len"] > 16
    n = len(spatial.CATEGORIES) * 8  # data.test=8 per category
    assert m["n"] == n and set(m["per_category"]) == set(spatial.CATEGORIES)
    assert all(v["n"] == 8 for v in m["per_category"].values())
    assert 0 <= m["accuracy"] <= 1 and abs(sum(m["predicted_histogram"].values()) - 1) < 1e-6
    run = runs_dir / "a" / "c_abstractor-m16-r112-s0-joint"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
    assert len(losses(run)) == 6
    preds = json.loads((run / "predictions_test.json").read_text())
    assert len(preds) == n
    assert sum(p["pred"] == p["answer"] for p in preds.values()) / n == pytest.approx(m["accuracy"])


def test_same_seed_gives_identical_metrics(runs_dir):
    for sweep in ("d1", "d2"):
        train("projector=d_abstractor", "projector.num_visual_tokens=16", "projector.depth=1", f"sweep={sweep}")
    a, b = results(runs_dir, "d1"), results(runs_dir, "d2")
    assert a["metrics"]["per_category"] == b["metrics"]["per_category"]
    assert a["metrics"]["loss"] == b["metrics"]["loss"]


def test_a_killed_run_resumes_from_its_checkpoint(runs_dir):
    failed = train("projector=mlp", "sweep=r", "fail_at_step=4", check=False)
    assert failed.returncode != 0
    r = results(runs_dir, "r")
    assert r["status"] == "failed" and "injected failure at step 4" in r["error"]
    train("projector=mlp", "sweep=r")  # same arm, failure removed: resumes from step 3
    resumed = results(runs_dir, "r")
    assert resumed["status"] == "completed" and resumed["efficiency"]["resumed_from_step"] == 3
    assert resumed["efficiency"]["steps"] == 6
    train("projector=mlp", "sweep=u")  # uninterrupted: the resumed run matches it exactly
    straight = results(runs_dir, "u")
    assert resumed["metrics"]["per_category"] == straight["metrics"]["per_category"]
    assert resumed["metrics"]["loss"] == pytest.approx(straight["metrics"]["loss"], abs=1e-6)


def test_cached_and_uncached_features_give_the_same_loss_curve(runs_dir):
    train("projector=c_abstractor", "projector.num_visual_tokens=16", "sweep=cached")
    train("projector=c_abstractor", "projector.num_visual_tokens=16", "sweep=live", "feature_cache=off")
    cached, live = results(runs_dir, "cached"), results(runs_dir, "live")
    assert cached["efficiency"]["feature_cache"] is True and live["efficiency"]["feature_cache"] is False
    a = losses(runs_dir / "cached" / "c_abstractor-m16-r112-s0-joint")
    b = losses(runs_dir / "live" / "c_abstractor-m16-r112-s0-joint")
    assert len(a) == len(b) == 6
    assert a == pytest.approx(b, abs=1e-5)


def test_llava_mix_trains_a_few_steps(runs_dir, tmp_path):
    """A mix-like file (a tenth text-only, 1-4 turns, JPEG and PNG in nested folders) under a length cap that
    cuts some records and leaves out those whose image tokens it would cut."""
    data, images = write_mix(tmp_path, 40)
    proc = train("data=llava", f"data.train_json={data}", f"data.image_root={images}", "data.max_length=30",
                 "projector=c_abstractor", "projector.num_visual_tokens=16", "sweep=llava")
    left_out = re.search(r"data: (\d+) of 40 train records left out", proc.stdout)
    assert left_out and 0 < int(left_out.group(1)) < 40, proc.stdout[-2000:]
    r = results(runs_dir, "llava")
    assert r["status"] == "completed" and r["efficiency"]["steps"] == 6
    assert r["metrics"]["val"]["loss"] > 0 and r["config"]["image_aspect"] == "resize"


def _bad(*overrides: str) -> str:
    proc = train(*overrides, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def test_bad_data_inputs_are_one_line_errors(runs_dir, tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (8, 8)).save(img)
    no_image = [{"id": "x1", "image": "missing.png", "conversations": [
        {"from": "human", "value": "<image> q"}, {"from": "gpt", "value": "a"}]}]
    no_slot = [{"id": "x2", "image": "a.png", "conversations": [
        {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]
    for name, recs, needle in (("m.json", no_image, "missing.png"), ("s.json", no_slot, "<image>")):
        (tmp_path / name).write_text(json.dumps(recs))
        msg = _bad("data=llava", f"data.train_json={tmp_path / name}", f"data.image_root={tmp_path}")
        assert needle in msg and ("x1" in msg or "x2" in msg)
    msg = _bad("data=llava", f"data.image_root={tmp_path}")
    assert "data.train_json" in msg and "data.image_root" not in msg
    assert "empty" in _bad("data.test=0")
    assert "init_from" in _bad("stage=stage2")
    assert "does not exist" in _bad("stage=stage2", f"init_from={tmp_path / 'nope'}")


def test_bad_model_config_is_one_line_errors(runs_dir):
    msg = _bad("projector=abstractor")
    assert "'abstractor'" in msg and "c_abstractor" in msg
    msg = _bad("projector=c_abstractor", "projector.num_visual_tokens=50")
    assert "c_abstractor" in msg and "50" in msg and "perfect square" in msg
    assert "289" in _bad("projector=d_abstractor", "projector.num_visual_tokens=289")
    msg = _bad("vision.resolution=100")
    assert "100" in msg and "7" in msg
    msg = _bad("vision=clip_l14")
    assert "openai/clip-vit-large-patch14" in msg and "offline" in msg


def test_stage_two_starts_from_stage_one(runs_dir):
    train("projector=c_abstractor", "projector.num_visual_tokens=16", "stage=stage1", "sweep=two")
    first = runs_dir / "two" / "c_abstractor-m16-r112-s0-stage1"
    s1 = json.loads((first / "results.json").read_text())
    assert s1["efficiency"]["params_trainable"] == s1["efficiency"]["projector_params"]  # LLM and tower frozen
    proc = train("projector=c_abstractor", "projector.num_visual_tokens=16", "stage=stage2", f"init_from={first}",
                 "sweep=two")
    assert f"init_from {first / 'checkpoints' / 'last.ckpt'}: loaded" in proc.stdout
    s2 = json.loads((runs_dir / "two" / "c_abstractor-m16-r112-s0-stage2" / "results.json").read_text())
    assert s2["status"] == "completed" and s2["config"]["stage"] == "stage2"
    assert s2["efficiency"]["params_trainable"] > s2["efficiency"]["projector_params"]  # the LLM trains too
    # stage 1's weights are for its projector and backbones: another projector is refused before it is built
    msg = _bad("projector=resampler", "projector.num_visual_tokens=16", "stage=stage2", f"init_from={first}",
               "sweep=two")
    assert "was trained for other settings" in msg and "projector.name 'c_abstractor' -> 'resampler'" in msg


def test_the_folder_name_config_and_built_model_agree_at_two_resolutions(runs_dir):
    """RES=0 once trained at 112 px in a folder named r0: now each name-bearing key (projector, M, resolution,
    seed, stage) is read back from what was built, and must be what the folder name says."""
    from projlab.config import parse_run_name

    arms = {
        "c_abstractor-m16-r112-s0-joint": (["projector=c_abstractor", "projector.num_visual_tokens=16"], [16, 16]),
        "resampler-m9-r168-s1-stage1": (["projector=resampler", "projector.num_visual_tokens=9", "projector.depth=1",
                                         "vision.resolution=168", "seed=1", "stage=stage1"], [24, 24]),
    }
    for name, (overrides, grid) in arms.items():
        train(*overrides, "sweep=res")
        r = json.loads((runs_dir / "res" / name / "results.json").read_text())
        c = r["config"]
        assert c["grid"] == grid and c["resolution"] == grid[0] * 7  # the tiny tower's patch is 7 px
        named = parse_run_name(name)
        assert named == {**{k: c[k] for k in ("projector", "num_visual_tokens", "resolution", "seed", "stage")},
                         "control": None}
        saved = (runs_dir / "res" / name / "config.yaml").read_text()
        assert f"resolution: {named['resolution']}" in saved
