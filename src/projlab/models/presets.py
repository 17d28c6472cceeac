"""The tiny preset: the paper's classes (a CLIP model, a Llama LM) built from small configs, saved once
to a local folder, then loaded back with `from_pretrained` like any checkpoint.

Its sizes follow the paper's geometry: patch 7 at 112 px gives the 16x16 grid of ViT-L/14 at 224 px, and
168 px gives the 24x24 grid of ViT-L/14 at 336 px, so M = 64/144/256 mean the same thing. The CLIP model
is pre-trained contrastively on the rendered world (`tower_pretraining`), as the paper's CLIP is
pre-trained, once per resolution it serves: a tower is built at its resolution (its position embeddings
fit that grid) and pre-trained on the scenes resized to it, as CLIP-L/14-336 is a tower of its own beside
CLIP-L/14. `pretrain_steps=0` keeps it random. Its image processor (CLIP's, at the tower's resolution) is
saved beside it, so the tiny tower and a hub tower reach their pixels by one path. The LLM stays random:
the tiny recipe trains it.
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
    hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
)
TINY_LLM: dict[str, Any] = dict(
    hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=1024, tie_word_embeddings=True,
    # word embeddings of norm ~1 (std 1/sqrt(128)), as a trained LLM's: at the usual 0.02 they are 15x
    # smaller than the visual tokens, and the question's words barely move the visual tokens' residual stream
    initializer_range=0.09,
)
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
PRESET_VERSION = 7


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


def _build_once(dest: Path, spec: dict[str, Any], write, message: str | None = None) -> Path:
    """Write `dest` with `write(tmp)` once (atomic rename; safe under concurrent callers)."""
    root = dest.parent
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not (dest / "spec.json").exists():
            if message:
                print(message)
            tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=root))
            try:
                write(tmp)
                (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
                tmp.rename(dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_tiny_tower(cache_dir: str | Path, pretrain_steps: int = 0, seed: int = 0, resolution: int | None = None) -> str:
    """The tiny CLIP model at `resolution` (default TINY_VISION's), pre-trained `pretrain_steps` on the rendered
    world, written once; its path."""
    from transformers import CLIPConfig, CLIPModel

    from projlab.models.image_processing import pixel_values, clip_image_processor
    from projlab.models.tower_pretraining import pretrain_clip

    vision = {**TINY_VISION, "image_size": int(resolution or TINY_VISION["image_size"])}
    spec = {"vision": vision, "text": TINY_TEXT, "vocab": tiny_words(), "seed": seed,
            "pretrain_steps": pretrain_steps, "version": PRESET_VERSION}

    def write(tmp: Path) -> None:
        tokenizer = build_tokenizer(tiny_words())
        processor = clip_image_processor(vision["image_size"])
        torch.manual_seed(seed)
        clip = CLIPModel(CLIPConfig(
            text_config=dict(vocab_size=len(tokenizer), **TINY_TEXT, **_special_ids(tokenizer)),
            vision_config=vision, projection_dim=vision["hidden_size"],
        ))
        sincos_positions(clip.vision_model.embeddings.position_embedding.weight, vision["image_size"] // vision["patch_size"])
        if pretrain_steps:
            side = vision["image_size"]
            pretrain_clip(clip, tokenizer, lambda ims: pixel_values(processor, ims, side, "resize"), pretrain_steps,
                          seed=seed)
        clip.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        processor.save_pretrained(tmp)

    dest = Path(cache_dir) / "presets" / f"tiny-tower-{vision['image_size']}px-{_fingerprint(spec)}"
    note = f"building the tiny tower at {vision['image_size']} px in {dest}: {pretrain_steps} steps of pre-training (once)"
    return str(_build_once(dest, spec, write, note if pretrain_steps else None))


def ensure_tiny_llm(
    cache_dir: str | Path, config: dict[str, Any] | None = None, seed: int = 0, pretrain_steps: int = 0
) -> str:
    """A Llama of `config` (default TINY_LLM) over the tiny vocabulary, pre-trained `pretrain_steps` on the
    world in words (`llm_pretraining`; 0: random), written once; its path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from projlab.models.llm_pretraining import pretrain_llm

    llm_config = {**TINY_LLM, **(config or {})}
    spec = {"llm": llm_config, "vocab": tiny_words(), "seed": seed, "pretrain_steps": pretrain_steps,
            "version": PRESET_VERSION}

    def write(tmp: Path) -> None:
        tokenizer = build_tokenizer(tiny_words())
        torch.manual_seed(seed)
        llm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **_special_ids(tokenizer), **llm_config))
        if pretrain_steps:
            pretrain_llm(llm, tokenizer, pretrain_steps, seed=seed)
        llm.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    dest = Path(cache_dir) / "presets" / f"tiny-llm-{_fingerprint(spec)}"
    note = f"building the tiny LLM in {dest}: {pretrain_steps} steps of pre-training on text (once)"
    return str(_build_once(dest, spec, write, note if pretrain_steps else None))


@torch.no_grad()
def sincos_positions(table: torch.Tensor, side: int) -> None:
    """Start the tower's patch positions (rows 1.. of `table`, (1 + side^2, C); row 0 is CLS's) as MAE's 2-D
    sin-cos embedding: half the channels code the row, half the column, at geometric frequencies. From
    N(0, 0.02) the tiny tower's 400 steps of pre-training left position faint in its patch features (an
    object's fine row read by a linear probe at 34%, chance 8%); a trained CLIP's patch features say where
    they are, which is what the spatial questions ask. They stay trainable, as CLIP's are."""
    quarter = table.shape[1] // 4
    freq = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(side, dtype=torch.float64)[:, None] * freq  # (side, quarter)
    axis = torch.cat([pos.sin(), pos.cos()], dim=1)  # (side, C/2)
    rows = axis[:, None, :].expand(side, side, -1)
    cols = axis[None, :, :].expand(side, side, -1)
    table[1:] = torch.cat([rows, cols], dim=-1).reshape(side * side, -1).to(table.dtype)
    table[0] = 0


def _special_ids(tokenizer) -> dict[str, int]:
    return dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)
