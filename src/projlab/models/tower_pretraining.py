"""Contrastive pre-training of the tiny vision tower on the rendered world, as CLIP is pre-trained.

The paper's tower is a pre-trained CLIP, not a random one: a random frozen tower hands the projector
features in which shapes are hard to tell apart. This trains a tiny `CLIPModel` (vision + text) with
CLIP's own contrastive loss on rendered scenes against captions that list the objects with their cell
("two objects : red circle row-1 col-3 , blue cross row-4 col-1") in a random order. Like CLIP's, its
patch features then say what is where; whether a projector keeps that for the LLM is what is measured.

It runs once per preset (the weights are saved with the preset and loaded by `from_pretrained`), the
same for every arm: it favours no projector.
"""
from __future__ import annotations

import random

import torch
from PIL import Image

from projlab.data import spatial

COUNT_WORDS = spatial.OPTIONS["counting"]
FINE_SHARE = 0.3  # share of scenes on the fine layout (the benchmark's adjacent_relation scenes)
STRIPED_SHARE = 1 / 3  # chance that an object of a coarse scene is striped


def random_scene(rng: random.Random) -> list[spatial.SceneObject]:
    """1-4 objects of distinct shapes and colours on the coarse layout (each striped at random) or the
    fine one: the kinds of scene the benchmark draws."""
    layout = spatial.FINE_CELLS if rng.random() < FINE_SHARE else spatial.CELLS
    n = rng.randint(1, len(COUNT_WORDS))
    cells = rng.sample([(r, c) for r in range(layout) for c in range(layout)], n)
    shapes = rng.sample(spatial.SHAPES, n)
    colours = rng.sample(list(spatial.COLOURS), n)
    objects = []
    for s, c, cell in zip(shapes, colours, cells):
        striped = layout == spatial.CELLS and rng.random() < STRIPED_SHARE
        stripes = rng.choice(spatial.OPTIONS["stripes"]) if striped else None
        objects.append(spatial.SceneObject(s, c, cell, (rng.uniform(-1, 1), rng.uniform(-1, 1)), layout, stripes))
    return objects


def _where(o: spatial.SceneObject) -> str:
    """A cell in words: row-r col-c on the coarse layout, y-r x-c on the fine one (words of their own)."""
    r, c = o.cell[0] + 1, o.cell[1] + 1
    return f"row-{r} col-{c}" if o.layout == spatial.CELLS else f"y-{r} x-{c}"


def caption(objects: list[spatial.SceneObject], rng: random.Random) -> str:
    names = [
        f"{o.colour} {o.shape}" + (f" with {o.stripes} stripes" if o.stripes else "") + f" {_where(o)}"
        for o in objects
    ]
    rng.shuffle(names)
    noun = "object" if len(objects) == 1 else "objects"
    return f"{COUNT_WORDS[len(objects) - 1]} {noun} : " + " , ".join(names)


def caption_words() -> list[str]:
    coarse, fine = range(1, spatial.CELLS + 1), range(1, spatial.FINE_CELLS + 1)
    return (["object", "objects", ":", ",", "with", "stripes"] + [f"row-{i}" for i in coarse]
            + [f"col-{i}" for i in coarse] + [f"y-{i}" for i in fine] + [f"x-{i}" for i in fine])


def pretrain_clip(
    clip,  # transformers.CLIPModel
    tokenizer,
    preprocess,  # PIL images -> pixel values
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    log_every: int = 50,
) -> list[float]:
    """Train `clip` in place; returns the loss per step."""
    rng = random.Random(f"tower-pretraining/{seed}")
    opt = torch.optim.AdamW(clip.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * s / steps)).item())
    )
    clip.train()
    losses = []
    for step in range(steps):
        scenes = [random_scene(rng) for _ in range(batch_size)]
        images: list[Image.Image] = [spatial.render(s) for s in scenes]  # resized by `preprocess`
        # CLIP's text tower pools at the end-of-text token: every caption must end with one
        captions = [f"{caption(s, rng)} {tokenizer.eos_token}" for s in scenes]
        text = tokenizer(captions, padding=True, return_tensors="pt")
        out = clip(
            input_ids=text["input_ids"], attention_mask=text["attention_mask"],
            pixel_values=preprocess(images), return_loss=True,
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(out.loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"tower pre-training: step {step + 1}/{steps} contrastive loss {sum(losses[-log_every:]) / log_every:.3f}")
    clip.eval()
    return losses
