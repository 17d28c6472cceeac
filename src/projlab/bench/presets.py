"""The bench's two sizes: the tiny preset (the project's own) and "mid", the same classes with bigger configs.

"mid" is built the way the tiny preset is: CLIP and Llama built from configs, saved once under the cache
folder (next to the tiny preset), then loaded back with `from_pretrained` through the project's own
`VisionTower` and `LanguageModel`. Patch 14 at 224 px gives the same 16x16 grid as the tiny preset (and as
ViT-L/14 at 224 px), so M = 64/144/256 mean the same thing at both sizes.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from projlab import build
from projlab.config import load_config
from projlab.models.language import LanguageModel
from projlab.models.mllm import MLLM
from projlab.models.presets import build_tokenizer, tiny_words
from projlab.models.vision import VisionTower

MID_VISION: dict[str, Any] = dict(
    hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
    image_size=224, patch_size=14, num_channels=3,
)
MID_LLM: dict[str, Any] = dict(
    hidden_size=512, intermediate_size=2048, num_hidden_layers=4, num_attention_heads=8,
    num_key_value_heads=8, max_position_embeddings=1024, tie_word_embeddings=True,
)
PRESETS = ("tiny", "mid")


@dataclass
class Backbones:
    """One preset's frozen tower and LLM, loaded once and shared by every arm built on it."""

    name: str
    cfg: DictConfig  # the run config of the preset (projector group left at its default)
    vision: VisionTower
    llm: LanguageModel

    def config(self, projector: str | None = None, knobs: dict | None = None, **changes: Any) -> DictConfig:
        """The preset's run config with another projector (`knobs`: its settings) and `changes` merged in
        (e.g. stage={"batch_size": 8})."""
        cfg = OmegaConf.create(OmegaConf.to_container(self.cfg, resolve=True))
        if projector is not None:
            cfg.projector = {"name": projector, **(knobs or {})}
        return OmegaConf.merge(cfg, changes)

    def model(self, cfg: DictConfig) -> MLLM:
        """The MLLM of `cfg` on this preset's shared tower and LLM."""
        return build.model(cfg, (self.vision, self.llm))


def mid_tokenizer():
    """The mid LLM's tokenizer: the tiny preset's words (the benchmark's, the prompt template's "question", ":"
    and "answer", the captions'), so that no prompt word is `<unk>`."""
    return build_tokenizer(tiny_words())


def _write_mid(dest: Path, seed: int) -> None:
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    from projlab.models.image_processing import clip_image_processor

    torch.manual_seed(seed)
    CLIPVisionModel(CLIPVisionConfig(**MID_VISION)).save_pretrained(dest / "vision")
    clip_image_processor(MID_VISION["image_size"]).save_pretrained(dest / "vision")
    tokenizer = mid_tokenizer()
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, **MID_LLM,
        )
    ).save_pretrained(dest / "llm")
    tokenizer.save_pretrained(dest / "llm")


def ensure_mid_preset(cache_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """Write the mid backbones under `cache_dir` once (safe under concurrent callers); return their paths."""
    spec = {"vision": MID_VISION, "llm": MID_LLM, "vocab": tiny_words(), "seed": seed, "version": 3}
    root = Path(cache_dir) / "presets"
    dest = root / f"mid-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]}"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not (dest / "llm" / "config.json").exists():
            tmp = Path(tempfile.mkdtemp(prefix=".mid-", dir=root))
            try:
                _write_mid(tmp, seed)
                (tmp / "spec.json").write_text(json.dumps(spec, indent=2))
                tmp.rename(dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return {"vision": str(dest / "vision"), "llm": str(dest / "llm")}


def preset_overrides(name: str) -> list[str]:
    """Hydra overrides that select preset `name` (the tiny preset is the config's default)."""
    if name == "tiny":
        return []
    cache = load_config([]).paths.cache_dir
    paths = ensure_mid_preset(cache)
    return [
        f"vision.name_or_path={paths['vision']}", f"llm.name_or_path={paths['llm']}",
        f"vision.resolution={MID_VISION['image_size']}", "preset=mid",
    ]


def load_backbones(name: str) -> Backbones:
    """The preset's tower and LLM, loaded as a run loads them (`projlab.build.backbones`)."""
    cfg = load_config(preset_overrides(name))
    return Backbones(name, cfg, *build.backbones(cfg))
