"""The tiny preset: the paper's classes (CLIP vision tower, Llama LM) built from small configs, saved
once to a local folder, then loaded back with `from_pretrained` like any checkpoint.

Its sizes follow the paper's geometry: patch 7 at 112 px gives the 16x16 grid of ViT-L/14 at 224 px, and
168 px gives the 24x24 grid of ViT-L/14 at 336 px, so M = 64/144/256 mean the same thing.
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
TINY_LLM: dict[str, Any] = dict(
    hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=1024, tie_word_embeddings=True,
)
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]


def _fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def build_tokenizer(words: list[str]):
    """A word-level tokenizer over `words`, trained offline, wrapped as a Hugging Face fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + [w for w in words if w not in SPECIAL_TOKENS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        additional_special_tokens=["<image>"],
    )


def _write_tiny(dest: Path, seed: int) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from projlab.data.spatial import vocabulary

    torch.manual_seed(seed)
    CLIPVisionModel(CLIPVisionConfig(**TINY_VISION)).save_pretrained(dest / "vision")
    tokenizer = build_tokenizer(vocabulary())
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, **TINY_LLM,
        )
    )
    llm.save_pretrained(dest / "llm")
    tokenizer.save_pretrained(dest / "llm")


def ensure_tiny_preset(cache_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """Write the tiny backbones under `cache_dir` once (safe under concurrent callers); return their paths."""
    from projlab.data.spatial import vocabulary

    spec = {"vision": TINY_VISION, "llm": TINY_LLM, "vocab": vocabulary(), "seed": seed, "version": 1}
    root = Path(cache_dir) / "presets"
    dest = root / f"tiny-{_fingerprint(spec)}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not (dest / "llm" / "config.json").exists():
            tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root))
            try:
                _write_tiny(tmp, seed)
                (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
                tmp.rename(dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return {"vision": str(dest / "vision"), "llm": str(dest / "llm")}
