"""The paper's configuration, end to end on the CPU without its weights: CLIP ViT-L/14-336 and Vicuna-7B
v1.5 built from their configs with random weights (the LLM cut to 2 of its 32 layers; every width as
published), saved and loaded back through `from_pretrained`, then Honeybee's C-Abstractor (M = 144) through
three stage-1 steps (a failure after the second and a resume), one stage-2 step from stage 1, and an answer
generated. What it costs is printed (`pytest -s`)."""
from __future__ import annotations

import gc
import json

import pytest
import torch

from projlab.config import load_config
from projlab.data import spatial
from projlab.data.prompt import template_words
from projlab.evaluation import chat
from projlab.models.image_processing import clip_image_processor
from projlab.models.presets import build_tokenizer, tiny_words
from projlab.train import run

pytestmark = pytest.mark.slow

CLIP_L14_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=768)
VICUNA_7B = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                 max_position_embeddings=4096, rms_norm_eps=1e-5, vocab_size=32000, tie_word_embeddings=False,
                 hidden_act="silu")
LLM_LAYERS = 2


@pytest.fixture(scope="session")
def backbones(tmp_path_factory) -> dict[str, str]:
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("paper")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(**CLIP_L14_336)).save_pretrained(root / "vision")
    clip_image_processor(CLIP_L14_336["image_size"]).save_pretrained(root / "vision")
    # Vicuna's SentencePiece vocabulary is not here: a word-level one over the data's words, in its 32,000 rows
    tokenizer = build_tokenizer(tiny_words() + template_words("vicuna"))
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    torch.set_default_dtype(torch.bfloat16)  # built as it is stored: no float32 copy of 667M weights
    try:
        LlamaForCausalLM(LlamaConfig(**VICUNA_7B, num_hidden_layers=LLM_LAYERS, **ids)).save_pretrained(root / "llm")
    finally:
        torch.set_default_dtype(torch.float32)
    tokenizer.save_pretrained(root / "llm")
    return {"vision": str(root / "vision"), "llm": str(root / "llm")}


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
              "trainer.checkpoint_every_steps=1"]
    with pytest.raises(RuntimeError, match="injected failure at step 2"):
        run(load_config([*stage1, "fail_at_step=2"]))
    gc.collect()  # one model in memory at a time
    first = run(load_config(stage1))
    assert first["status"] == "completed" and first["efficiency"]["resumed_from_step"] == 2
    assert first["efficiency"]["steps"] == 3 and first["config"]["grid"] == [24, 24]
    assert first["config"]["num_visual_tokens"] == 144 and first["efficiency"]["params_trainable"] > 30e6

    stage1_dir = first["run_dir"]
    gc.collect()
    # (its checkpoint, 4 GB with the LLM's optimiser state, is not written: stage 2's checkpoints are tested tiny)
    second = run(load_config(["experiment=paper_stage2", *common, "stage.max_steps=1", "eval.val_every_steps=1",
                              "trainer.checkpoint_every_steps=100", f"init_from={stage1_dir}"]))
    assert second["status"] == "completed" and second["efficiency"]["steps"] == 1
    assert second["efficiency"]["params_trainable"] > first["efficiency"]["params_trainable"] + 400e6  # the LLM's too

    gc.collect()
    answer = chat.main(["--run", stage1_dir, "--image", str(tmp_path / "scene.jpg"), "--prompt",
                        "where is the object ?", "--max-new-tokens", "4"])
    assert isinstance(answer, str)
    for name, r in (("stage 1", first), ("stage 2", second)):
        e = r["efficiency"]  # the tensor peak is measured on a process's third step: these runs are shorter
        print(f"\n{name}: median step {e['step_time_s']:.1f} s (batch 1, {e['llm_seq_len']} tokens), process peak "
              f"{e['peak_rss_mb'] / 1024:.1f} GiB, {e['params_trainable'] / 1e6:.0f}M trainable parameters")
