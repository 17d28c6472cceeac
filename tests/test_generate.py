"""Answers written out: the KV-cached, left-padded batch decoding gives what step-by-step greedy decoding
gives; sampling repeats with its seed; a tiny run answers an MME folder in text, and its results.json
holds the scores and how they were answered; `make chat` prints an answer."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import TINY_RUN
from projlab.data import spatial
from projlab.data.prompt import TextProcessor
from projlab.evaluation import chat, evaluate
from projlab.evaluation.generate import Decoding, generate
from projlab.evaluation.mme import load_mme
from test_benchmark_formats import write_mme_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny(cache_dir):
    from projlab.config import load_config
    from projlab import build

    cfg = load_config(["projector=c_abstractor", "projector.num_visual_tokens=16"])
    model = build.model(cfg).eval()
    llm = model.llm
    return model, TextProcessor(llm.tokenizer, model.num_visual_tokens, llm.image_token_id, cfg.llm.template)


def stepwise_greedy(model, processor, question, image, n: int) -> str:
    """Greedy decoding by recomputing the whole sequence at every step: no cache, no padding."""
    ids = torch.tensor([processor.prompt_ids(question)])
    visual = model.encode_images(model.vision.preprocess([image]))
    new = []
    with torch.no_grad():
        for _ in range(n):
            token = int(model(ids, torch.ones_like(ids), visual_tokens=visual).logits[0, -1].argmax())
            if token == processor.tokenizer.eos_token_id:
                break
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return processor.tokenizer.decode(new, skip_special_tokens=True).strip()


def test_batched_cached_greedy_decoding_matches_stepwise_decoding(tiny):
    model, processor = tiny
    items = spatial.generate("gen", 1, seed=2)[:3]  # questions of different lengths: left padding
    images = [spatial.render(it.objects) for it in items]
    questions = [it.question for it in items]
    assert len({len(processor.prompt_ids(q)) for q in questions}) > 1
    answers = generate(model, processor, questions, images, Decoding(max_new_tokens=6))
    assert answers == [stepwise_greedy(model, processor, q, im, 6) for q, im in zip(questions, images)]
    assert all(answers)

    sampled = Decoding(max_new_tokens=6, temperature=1.5, top_p=0.9, seed=3)
    again = generate(model, processor, questions, images, sampled)
    assert again == generate(model, processor, questions, images, sampled)


def test_a_run_answers_mme_in_text_and_records_how(runs_dir, tmp_path, capsys):
    subprocess.run([sys.executable, "-m", "projlab.train", *TINY_RUN, "projector=c_abstractor",
                    "projector.num_visual_tokens=16", "sweep=g"], check=True, capture_output=True)
    run = runs_dir / "g" / "c_abstractor-m16-r112-s0-joint"
    mme = tmp_path / "MME"
    yes_no = [("is there a red circle ? Please answer yes or no.", "Yes"),
              ("is there a blue square ? Please answer yes or no.", "No")]
    write_mme_task(mme / "existence", {"a": yes_no, "b": yes_no}, split=False, fmt="JPEG")
    write_mme_task(mme / "position", {"c": yes_no[::-1]}, split=True)

    evaluate.main(["--run", str(run), "--bench", "mme", "--data", str(mme), "--mode", "generate",
                   "--max-new-tokens", "3"])
    record = json.loads((run / "results.json").read_text())
    scores = record["metrics"]["benchmarks"]["mme"]
    assert record["status"] == "completed" and record["metrics"]["accuracy"] is not None  # kept
    assert scores["answered_by"] == "generate" and scores["reading"]["rule"] == "yes_no_first_word"
    assert set(scores["per_category"]) == {"existence", "position"} and scores["overall"]["n"] == 6
    answers = json.loads((run / "predictions_mme.json").read_text())
    assert set(answers) == {r.id for r in load_mme(mme)} and all(isinstance(a, str) for a in answers.values())
    assert sum(scores["reading"]["read_as"].values()) == 6  # every answer read (or counted unreadable)

    evaluate.main(["--run", str(run), "--bench", "mme", "--data", str(mme)])
    scores = json.loads((run / "results.json").read_text())["metrics"]["benchmarks"]["mme"]
    assert scores["answered_by"] == "likelihood" and scores["reading"]["rule"] == "option_key"

    capsys.readouterr()
    args = ["--run", str(run), "--image", str(mme / "existence" / "a.jpg"), "--prompt", "where is the red circle ?",
            "--max-new-tokens", "4"]
    answer = chat.main(args)
    assert capsys.readouterr().out == answer + "\n" and chat.main(args) == answer  # greedy: the same twice
