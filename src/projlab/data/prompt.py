"""The prompt templates, the text processor and the collator, shared by every data source.

The processor expands each `<image>` placeholder into M image tokens (M from the projector) and masks the
labels (-100) everywhere but the answers. A question with its answer (the built-in benchmark, a benchmark's
options) is one turn with the image in the template's place; a conversation (LLaVA's records) is every turn
in one sequence, each `<image>` where the record put it, and is cut to `max_length` where it is longer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from projlab.data.conversation import IMAGE_TOKEN, Conversation
from projlab.data.spatial import Item
from projlab.errors import UserError


@dataclass(frozen=True)
class Template:
    system: str  # before the first turn
    turn: str  # one human turn, "{message}" where its text goes; the answer follows
    image_place: str  # where a question without its own placeholder puts the image ("{question}", "{image}")
    answer_eos: bool  # each answer ends with the tokenizer's EOS, learned (in a conversation)


TEMPLATES = {
    # the tiny preset's word-level vocabulary; the question comes before the image so that a small causal
    # LM reads every visual token knowing what is asked (the same for every arm: the projector never sees it)
    "plain": Template("", "question : {message} answer :", "{question} {image}", answer_eos=False),
    # Vicuna v1.1 / LLaVA-1.5 conversation format: "<system> USER: ... ASSISTANT: ...</s> USER: ..."
    "vicuna": Template("A chat between a curious user and an artificial intelligence assistant.",
                       " USER: {message} ASSISTANT:", "{image}\n{question}", answer_eos=True),
}


def _template(name: str) -> Template:
    if name not in TEMPLATES:
        raise UserError(f"prompt template {name!r} is unknown; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def template_words(template: str = "plain") -> list[str]:
    """The words of a template itself (a word-level tokenizer needs them in its vocabulary)."""
    t = _template(template)
    return (t.system + " " + t.turn.format(message=" ")).split()


def build_prompt(question: str, template: str = "plain", image: bool = True) -> str:
    """The one function that turns a question into the LLM's prompt (with one `<image>` placeholder, or none
    for a question without an image)."""
    t = _template(template)
    message = t.image_place.format(question=question, image=IMAGE_TOKEN) if image else question
    return t.system + t.turn.format(message=message)


@dataclass
class TextProcessor:
    tokenizer: PreTrainedTokenizerBase
    num_visual_tokens: int
    image_token_id: int
    template: str = "plain"
    max_length: int | None = None  # a training sequence's cap (`fit`); None: none

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []

    def _bos(self) -> list[int]:
        return [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []

    def _expand(self, text: str) -> list[int]:
        """Token ids of `text`, each `<image>` in it replaced by M image tokens."""
        ids: list[int] = []
        for k, part in enumerate(text.split(IMAGE_TOKEN)):
            ids += ([self.image_token_id] * self.num_visual_tokens if k else []) + self._ids(part)
        return ids

    def prompt_ids(self, question: str, image: bool = True) -> list[int]:
        """BOS + prompt tokens, with `<image>` expanded to M image tokens (or without an image)."""
        return self._bos() + self._expand(build_prompt(question, self.template, image))

    def answer_ids(self, answer: str) -> list[int]:
        ids = self._ids(" " + answer)
        if not ids:
            raise UserError(f"answer {answer!r} tokenises to nothing")
        return ids

    def example(self, question: str, answer: str) -> dict[str, list[int]]:
        """input_ids and labels for teacher-forced training: loss on the answer tokens only."""
        p, a = self.prompt_ids(question), self.answer_ids(answer)
        return {"input_ids": p + a, "labels": [-100] * len(p) + a}

    def conversation(self, turns: list[tuple[str, str]]) -> dict[str, list[int]]:
        """One sequence for every (human, answer) turn: BOS, the system text and each human turn masked, each
        answer learned (with EOS where the template ends answers so)."""
        t = _template(self.template)
        ids = self._bos() + self._ids(t.system)
        labels = [-100] * len(ids)
        eos = [self.tokenizer.eos_token_id] if t.answer_eos else []
        for human, answer in turns:
            prompt, reply = self._expand(t.turn.format(message=human)), self.answer_ids(answer) + eos
            ids += prompt + reply
            labels += [-100] * len(prompt) + reply
        return {"input_ids": ids, "labels": labels}

    def encode(self, item: Item | Conversation) -> dict[str, list[int]] | None:
        """The training sequence of a source's item, fitted to `max_length` (None: it cannot be)."""
        if isinstance(item, Conversation):
            return self.fit(self.conversation(item.turns))
        return self.fit(self.example(item.question, item.answer_text))

    def fit(self, example: dict[str, list[int]]) -> dict[str, list[int]] | None:
        """`example` cut to `max_length` tokens, never inside the image tokens: the text after them is cut; a
        sequence whose image tokens end past the cap, or with no answer token left, cannot be fitted (None)."""
        ids, labels, cap = example["input_ids"], example["labels"], self.max_length
        if cap is None or len(ids) <= cap:
            return example
        if self.image_token_id in ids[cap:]:
            return None
        if all(label == -100 for label in labels[:cap]):
            return None
        return {"input_ids": ids[:cap], "labels": labels[:cap]}


def fitting(items: list, processor: TextProcessor) -> list[int]:
    """Indices of the `items` whose sequences fit the processor's `max_length` (all of them without one)."""
    if processor.max_length is None:
        return list(range(len(items)))
    return [i for i, item in enumerate(items) if processor.encode(item) is not None]


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
