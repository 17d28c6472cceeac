"""Pre-training the tiny LLM on text, as the paper's LLM is pre-trained before it ever sees an image.

The corpus is the benchmark's world in words: each example is a question of the benchmark's prompt
template with the image replaced by a description of the scene in the tower's caption language ("two
objects : red circle row-1 col-3 , blue cross with vertical stripes row-4 col-1"), and its answer. The
loss is on the answer tokens, as in the visual task. So the LLM arrives knowing the questions, the answer
words and how to answer from a list of objects with their places; what it cannot know is how any
projector writes a scene into visual tokens, which is what an arm then learns.

It runs once per preset (the weights are saved with the preset and loaded by `from_pretrained`), the same
for every arm: it favours no projector (no visual token is involved).
"""
from __future__ import annotations

import math
import random

import torch

from projlab.data import spatial
from projlab.data.conversation import IMAGE_TOKEN
from projlab.data.prompt import TextProcessor, build_prompt, collate_examples
from projlab.models.tower_pretraining import caption


def text_example(item: spatial.Item, processor: TextProcessor, rng: random.Random) -> dict[str, list[int]]:
    """input_ids and labels of one question answered from the scene in words (loss on the answer)."""
    before, after = build_prompt(item.question, processor.template).split(IMAGE_TOKEN)
    bos = [processor.tokenizer.bos_token_id] if processor.tokenizer.bos_token_id is not None else []
    prompt = bos + processor._ids(f"{before} {caption(item.objects, rng)} {after}")
    answer = processor.answer_ids(item.answer_text)
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer}


def pretrain_llm(
    llm,  # transformers.PreTrainedModel (causal LM)
    tokenizer,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    template: str = "plain",
    log_every: int = 100,
) -> list[float]:
    """Train `llm` in place on `steps` batches of text questions over every category; returns the losses."""
    rng = random.Random(f"llm-pretraining/{seed}")
    processor = TextProcessor(tokenizer, 0, -1, template)
    opt = torch.optim.AdamW(llm.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    llm.train()
    losses: list[float] = []
    for step in range(steps):
        items = [
            spatial.make_item(c, rng.randrange(len(spatial.OPTIONS[c])), rng, f"text-{step}-{i}")
            for i, c in enumerate(rng.choices(spatial.CATEGORIES, k=batch_size))
        ]
        batch = collate_examples([text_example(it, processor, rng) for it in items], tokenizer.pad_token_id)
        loss = llm(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llm.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"LLM pre-training on text: step {step + 1}/{steps} loss {sum(losses[-log_every:]) / log_every:.3f}")
    llm.eval()
    return losses
