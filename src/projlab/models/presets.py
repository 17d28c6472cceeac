"""The tiny preset: the paper's classes (a CLIP model, a Llama LM) built from small configs, saved once
to a local folder, then loaded back with `from_pretrained` like any checkpoint.

Its sizes follow the paper's geometry: patch 7 at 112 px gives the 16x16 grid of ViT-L/14 at 224 px, and
168 px gives the 24x24 grid of ViT-L/14 at 336 px, so M = 64/144/256 mean the same thing. The CLIP model
is pre-trained contrastively on the rendered world (`tower_pretraining`), as the paper's CLIP is
pre-trained; `pretrain_steps=0` keeps it random. The LLM stays random: the tiny recipe trains it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

TINY_VISION: dict[str, Any] = dict(
    hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    image_size=112, patch_size=7, num_channels=3,
)
TINY_TEXT: dict[str, Any] = dict(
    hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32,
)
TINY_LLM: dict[str, Any] = dict(
    hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=1024, tie_word_embeddings=True,
)
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
PRESET_VERSION = 3


def _fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def tiny_words() -> list[str]:
    """The tiny tokenizer's vocabulary: the benchmark's words, the prompt template's, the captions'."""
    from projlab.data.prompt import template_words
    from projlab.data.spatial import vocabulary
    from projlab.models.tower_pretraining import caption_words

    return list(dict.fromkeys(vocabulary() + template_words("plain") + caption_words()))


def build_tokenizer(words: list[str]):
    """A word-level tokenizer over `words`, trained offline, wrapped as a Hugging Face fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(SPECIAL_TOKENS + list(words)))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=["<image>"],
    )


def _write_tiny(dest: Path, seed: int, pretrain_steps: int) -> None:
    from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM

    from projlab.models.tower_pretraining import pretrain_clip
    from projlab.models.vision import VisionTower

    tokenizer = build_tokenizer(tiny_words())
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), **TINY_TEXT, **ids), vision_config=TINY_VISION,
        projection_dim=TINY_VISION["hidden_size"],
    ))
    if pretrain_steps:
        side = TINY_VISION["image_size"]

        def preprocess(images):
            return VisionTower.normalise_pixels(images, side)

        pretrain_clip(clip, tokenizer, preprocess, pretrain_steps, seed=seed, resolution=side)
    clip.save_pretrained(dest / "vision")
    tokenizer.save_pretrained(dest / "vision")
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **ids, **TINY_LLM))
    llm.save_pretrained(dest / "llm")
    tokenizer.save_pretrained(dest / "llm")


def ensure_tiny_preset(cache_dir: str | Path, pretrain_steps: int = 0, seed: int = 0) -> dict[str, str]:
    """Write the tiny backbones under `cache_dir` once (safe under concurrent callers); return their paths."""
    spec = {
        "vision": TINY_VISION, "text": TINY_TEXT, "llm": TINY_LLM, "vocab": tiny_words(), "seed": seed,
        "pretrain_steps": pretrain_steps, "version": PRESET_VERSION,
    }
    root = Path(cache_dir) / "presets"
    dest = root / f"tiny-{_fingerprint(spec)}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not (dest / "llm" / "config.json").exists():
            if pretrain_steps:
                print(f"building the tiny preset in {dest}: {pretrain_steps} steps of tower pre-training (once)")
            tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root))
            try:
                _write_tiny(tmp, seed, pretrain_steps)
                (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
                tmp.rename(dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return {"vision": str(dest / "vision"), "llm": str(dest / "llm")}
