"""The prompt template, the text processor and the collator, shared by every data source.

The processor expands the one `<image>` placeholder of a prompt into M image tokens (M from the
projector) and masks the labels (-100) everywhere but the answer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from projlab.errors import UserError
from projlab.models.language import IMAGE_TOKEN

TEMPLATES = {
    # the tiny preset's word-level vocabulary; the question comes before the image so that a small causal
    # LM reads every visual token knowing what is asked (the same for every arm: the projector never sees it)
    "plain": "question : {question} {image} answer :",
    # Vicuna v1.1 / LLaVA-1.5 conversation format
    "vicuna": "A chat between a curious user and an artificial intelligence assistant. USER: {image}\n{question} ASSISTANT:",
}


def template_words(template: str = "plain") -> list[str]:
    """The words of a template itself (a word-level tokenizer needs them in its vocabulary)."""
    text = TEMPLATES[template].format(image=" ", question=" ")
    return text.split()


def build_prompt(question: str, template: str = "plain") -> str:
    """The one function that turns a question into the LLM's prompt (with one `<image>` placeholder)."""
    if template not in TEMPLATES:
        raise UserError(f"prompt template {template!r} is unknown; known: {', '.join(TEMPLATES)}")
    if IMAGE_TOKEN in question:  # a LLaVA turn carries its own placeholder: keep it where it is
        question = " ".join(question.replace(IMAGE_TOKEN, " ").split())
    return TEMPLATES[template].format(image=IMAGE_TOKEN, question=question)


@dataclass
class TextProcessor:
    tokenizer: PreTrainedTokenizerBase
    num_visual_tokens: int
    image_token_id: int
    template: str = "plain"

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []

    def prompt_ids(self, question: str) -> list[int]:
        """BOS + prompt tokens, with `<image>` expanded to M image tokens."""
        before, after = build_prompt(question, self.template).split(IMAGE_TOKEN)
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        return bos + self._ids(before) + [self.image_token_id] * self.num_visual_tokens + self._ids(after)

    def answer_ids(self, answer: str) -> list[int]:
        ids = self._ids(" " + answer)
        if not ids:
            raise UserError(f"answer {answer!r} tokenises to nothing")
        return ids

    def example(self, question: str, answer: str) -> dict[str, list[int]]:
        """input_ids and labels for teacher-forced training: loss on the answer tokens only."""
        p, a = self.prompt_ids(question), self.answer_ids(answer)
        return {"input_ids": p + a, "labels": [-100] * len(p) + a}


def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def collate_examples(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels."""
    ids = [e["input_ids"] for e in examples]
    return {
        "input_ids": pad(ids, pad_id),
        "attention_mask": pad([[1] * len(s) for s in ids], 0),
        "labels": pad([e["labels"] for e in examples], -100),
    }
