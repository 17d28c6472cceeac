"""The paper's configuration, end to end on the CPU without its weights: CLIP ViT-L/14-336 and Vicuna-7B
v1.5 built from their configs with random weights (the LLM cut to 2 of its 32 layers; every width as
published), saved and loaded back through `from_pretrained`, then Honeybee's C-Abstractor (M = 144) through
three stage-1 steps (a failure after the second and a resume), one stage-2 step from stage 1, and an answer
generated and an MMBench TSV scored. What it costs is printed (`pytest -s`)."""
from __future__ import annotations

import base64
import gc
import json

import pandas as pd

import pytest

from projlab.config import load_config
from projlab.data import spatial
from projlab.data.prompt import template_words
from projlab.evaluation import chat, evaluate
from projlab.models.paper_backbones import save_random_llm, save_random_tower
from projlab.models.presets import build_tokenizer, tiny_words
from projlab.results import read_results
from projlab.train import run

pytestmark = pytest.mark.slow

LLM_LAYERS = 2


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("paper")
    # Vicuna's SentencePiece vocabulary is not here: a word-level one over the data's words, in its 32,000 rows
    tokenizer = build_tokenizer(tiny_words() + template_words("vicuna"))
    return {"vision": save_random_tower(root / "vision"),
            "llm": save_random_llm(root / "llm", tokenizer, layers=LLM_LAYERS)}


def write_data(folder) -> tuple[str, str]:
    """Two records in LLaVA's JSON: a wide JPEG with two turns, and a text-only one."""
    item = spatial.generate("paper", 1, seed=0)[0]
    spatial.render(item.objects).resize((400, 300)).save(folder / "scene.jpg")
    records = [
        {"id": "img", "image": "scene.jpg", "conversations": [
            {"from": "human", "value": f"<image>\n{item.question}"}, {"from": "gpt", "value": item.answer_text},
            {"from": "human", "value": "how many objects are there ?"}, {"from": "gpt", "value": "one"}]},
        {"id": "txt", "conversations": [{"from": "human", "value": "what colour is red ?"},
                                        {"from": "gpt", "value": "red"}]},
    ]
    (folder / "data.json").write_text(json.dumps(records))
    return str(folder / "data.json"), str(folder)


def write_mmbench(folder, image: str) -> str:
    """One MMBench question in VLMEvalKit's TSV (two options: circular evaluation asks it twice)."""
    item = spatial.generate("paper", 1, seed=0)[0]
    wrong = next(text for letter, text in item.options.items() if letter != item.answer)
    row = {"index": 0, "question": item.question, "A": item.answer_text, "B": wrong, "answer": "A",
           "category": "spatial_relationship", "l2-category": "relation",
           "image": base64.b64encode(open(image, "rb").read()).decode()}
    pd.DataFrame([row]).to_csv(folder / "MMBench_DEV_EN.tsv", sep="\t", index=False)
    return str(folder / "MMBench_DEV_EN.tsv")


def test_the_paper_configuration_trains_resumes_and_answers(backbones, runs_dir, tmp_path):
    data, images = write_data(tmp_path)
    common = [
        "vision=clip_l14_336", f"vision.name_or_path={backbones['vision']}", "vision.image_aspect=pad",
        f"llm.name_or_path={backbones['llm']}", "projector=c_abstractor", "projector.num_visual_tokens=144",
        "data=llava", f"data.train_json={data}", f"data.image_root={images}", "stage.batch_size=1",
        "stage.warmup_steps=1", "eval.batch_size=2", "trainer.accelerator=cpu", "trainer.progress_bar=false",
        "trainer.log_every_n_steps=1", "sweep=paper",
    ]
    stage1 = ["experiment=paper_stage1", *common, "stage.max_steps=3", "eval.val_every_steps=3",
              "trainer.checkpoint_every_steps=2"]
    with pytest.raises(RuntimeError, match="injected failure at step 2"):
        run(load_config([*stage1, "fail_at_step=2"]))
    gc.collect()  # one model in memory at a time
    first = run(load_config(stage1))
    assert first["status"] == "completed" and first["efficiency"]["resumed_from_step"] == 2
    assert first["efficiency"]["steps"] == 3 and first["config"]["grid"] == [24, 24]
    assert first["config"]["num_visual_tokens"] == 144 and first["efficiency"]["params_trainable"] > 30e6

    stage1_dir = first["run_dir"]
    gc.collect()
    # (one checkpoint, at its end: 4 GB with the LLM's optimiser state; stage 2's resume is tested tiny)
    second = run(load_config(["experiment=paper_stage2", *common, "stage.max_steps=1", "eval.val_every_steps=1",
                              "trainer.checkpoint_every_steps=100", f"init_from={stage1_dir}"]))
    assert second["status"] == "completed" and second["efficiency"]["steps"] == 1
    assert second["efficiency"]["params_trainable"] > first["efficiency"]["params_trainable"] + 400e6  # the LLM's too

    gc.collect()
    answer = chat.main(["--run", stage1_dir, "--image", str(tmp_path / "scene.jpg"), "--prompt",
                        "where is the object ?", "--max-new-tokens", "4"])
    assert isinstance(answer, str)
    gc.collect()
    tsv = write_mmbench(tmp_path, str(tmp_path / "scene.jpg"))
    evaluate.main(["--run", stage1_dir, "--bench", "mmbench", "--data", tsv])
    scores = read_results(stage1_dir)["metrics"]["benchmarks"]["mmbench"]
    assert scores["answered_by"] == "likelihood" and scores["overall"]["n"] == 1
    assert scores["n_predictions_expected"] == 2 and scores["n_predictions_missing"] == 0  # both circular copies
    for name, r in (("stage 1", first), ("stage 2", second)):
        e = r["efficiency"]  # the tensor peak is measured on a process's third step: these runs are shorter
        print(f"\n{name}: median step {e['step_time_s']:.1f} s (batch 1, {e['llm_seq_len']} tokens), process peak "
              f"{e['peak_rss_mb'] / 1024:.1f} GiB, {e['params_trainable'] / 1e6:.0f}M trainable parameters")
