"""Answers as text: the prompt's image tokens replaced by the visual tokens, then the LLM's own `generate`
from those embeddings, with its KV cache; greedy (temperature 0) or sampled (temperature, top-p).

The decoding settings are given in full (a `GenerationConfig` of our own), so a checkpoint's
generation_config.json (Vicuna's samples at temperature 0.9) never changes what "greedy" means here.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import GenerationConfig

from projlab.cli import positive_int
from projlab.data.prompt import TextProcessor
from projlab.errors import UserError
from projlab.evaluation.records import BenchRecord
from projlab.models.mllm import MLLM

# LLaVA-1.5's instruction after a multiple-choice question (its MMBench and SEED-Bench prompts)
OPTION_INSTRUCTION = "Answer with the option's letter from the given choices directly."


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0  # sampling's

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens={self.max_new_tokens} is not allowed; give at least 1")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UserError(f"temperature={self.temperature} is not allowed; give 0 (greedy) or more")
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise UserError(f"top_p={self.top_p} is not allowed; give a number in (0, 1]")

    def config(self, processor: TextProcessor) -> GenerationConfig:
        tok = processor.tokenizer
        sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p} if self.temperature \
            else {"do_sample": False}
        return GenerationConfig(max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id,
                                eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id, **sampling)


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=positive_int, default=Decoding.max_new_tokens,
                        help=f"the answer's length limit in tokens (default {Decoding.max_new_tokens})")
    parser.add_argument("--temperature", type=float, default=Decoding.temperature,
                        help="0: greedy (default); more: sampled")
    parser.add_argument("--top-p", type=float, default=Decoding.top_p, help="sampling's nucleus (default 1: all)")
    parser.add_argument("--seed", type=int, default=Decoding.seed, help="sampling's seed")


def decoding_from(args: argparse.Namespace) -> Decoding:
    return Decoding(args.max_new_tokens, args.temperature, args.top_p, args.seed)


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of different lengths -> input_ids and attention_mask (B, T), padded on the left so that every
    prompt ends where generation starts."""
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad_id] * (width - len(s)) + s for s in seqs], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], dtype=torch.long)
    return ids, mask


@torch.no_grad()
def generate(
    model: MLLM, processor: TextProcessor, questions: list[str], images: list[Image.Image] | None,
    decoding: Decoding = Decoding(),
) -> list[str]:
    """One answer per question, each on its image (`images` None: questions without an image)."""
    device = next(model.llm.parameters()).device
    ids, mask = left_pad([processor.prompt_ids(q, image=images is not None) for q in questions],
                         processor.tokenizer.pad_token_id)
    ids, mask = ids.to(device), mask.to(device)
    visual = None
    if images is not None and model.num_visual_tokens:
        visual = model.encode_images(model.vision.preprocess(images).to(device))
    embeds = model.embed_inputs(ids, visual)
    if decoding.temperature:
        torch.manual_seed(decoding.seed)
    # from embeddings alone, `generate` returns the new tokens only
    out = model.llm.model.generate(inputs_embeds=embeds, attention_mask=mask,
                                   generation_config=decoding.config(processor))
    return [text.strip() for text in processor.tokenizer.batch_decode(out, skip_special_tokens=True)]


def question_text(record: BenchRecord) -> str:
    """What a benchmark's question says when the answer is written out: MME's question as it is (it asks for
    yes or no itself), the others' with their options listed and LLaVA-1.5's instruction."""
    if record.benchmark == "mme":
        return record.question
    options = "\n".join(f"{key}. {text}" for key, text in record.options.items())
    return f"{record.question}\n{options}\n{OPTION_INSTRUCTION}"


def answer_in_text(
    model: MLLM, processor: TextProcessor, records: list[BenchRecord], decoding: Decoding, batch_size: int = 16
) -> dict[str, str]:
    """{record id: the answer as generated} for `records`."""
    answers: dict[str, str] = {}
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        texts = generate(model, processor, [question_text(r) for r in chunk], [r.image() for r in chunk], decoding)
        answers.update({r.id: text for r, text in zip(chunk, texts)})
    return answers
