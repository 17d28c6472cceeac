"""Multiple-choice answers by option likelihood (the SEED-Bench rule): each option's text is scored by
the sum of its tokens' log-probabilities after the prompt, and the best-scoring option is the answer.
Deterministic; no letters are generated, so a model cannot win by favouring one letter."""
from __future__ import annotations

import torch

from projlab.data.prompt import TextProcessor, collate_examples
from projlab.data.spatial import LETTERS, Item
from projlab.models.mllm import MLLM


def option_batch(items: list[Item], processor: TextProcessor) -> dict[str, torch.Tensor]:
    """One sequence per (item, option): prompt + option text, labels on the option tokens only.
    `group` maps each sequence to its item, `option` to its letter index."""
    examples, group, option = [], [], []
    for b, item in enumerate(items):
        for letter, text in item.options.items():
            examples.append(processor.example(item.question, text))
            group.append(b)
            option.append(LETTERS.index(letter))
    batch = collate_examples(examples, processor.tokenizer.pad_token_id)
    batch["group"] = torch.tensor(group)
    batch["option"] = torch.tensor(option)
    return batch


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over the positions where labels != -100. logits (S, T, V), labels (S, T) -> (S,)."""
    logp = logits[:, :-1].float().log_softmax(-1)
    target = labels[:, 1:]
    mask = target != -100
    picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def score_matrix(seq_scores: torch.Tensor, group: torch.Tensor, option: torch.Tensor, n_items: int) -> torch.Tensor:
    """(S,) sequence scores -> (n_items, 4) with -inf where an item has no such option."""
    out = torch.full((n_items, len(LETTERS)), float("-inf"), device=seq_scores.device)
    out[group, option] = seq_scores.float()
    return out


def choose(model: MLLM, options: dict[str, torch.Tensor], visual_tokens: torch.Tensor | None,
           n_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each item's answer by option likelihood: `options` from `option_batch` (S sequences), `visual_tokens`
    (n_items, M, C_llm) one set per item (None: no image tokens) -> (the chosen option's index per item
    (n_items,), each sequence's log-likelihood (S,))."""
    visual = visual_tokens[options["group"]] if visual_tokens is not None else None
    out = model(options["input_ids"], options["attention_mask"], visual)
    seq = sequence_logprob(out.logits, options["labels"])
    return score_matrix(seq, options["group"], options["option"], n_items).argmax(-1), seq
