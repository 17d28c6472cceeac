"""The built-in spatial benchmark: balanced, deterministic, and every answer true of its image."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from projlab.data import spatial
from projlab.data.conversation import IMAGE_TOKEN
from projlab.data.prompt import TextProcessor, build_prompt
from projlab.models.presets import build_tokenizer, tiny_words


@pytest.fixture(scope="module")
def items():
    return spatial.generate("test", 40, seed=7)


def test_answers_are_exactly_balanced_per_category(items):
    by_cat = Counter((it.category, it.answer) for it in items)
    for cat in spatial.CATEGORIES:
        counts = [by_cat[(cat, letter)] for letter in spatial.LETTERS]
        assert counts == [10, 10, 10, 10], (cat, counts)
    assert Counter(it.category for it in items) == {c: 40 for c in spatial.CATEGORIES}


def test_generation_is_deterministic_and_split_dependent():
    a = spatial.generate("train", 8, seed=1)
    b = spatial.generate("train", 8, seed=1)
    c = spatial.generate("val", 8, seed=1)
    assert [(x.question, x.answer, x.objects) for x in a] == [(x.question, x.answer, x.objects) for x in b]
    assert [x.objects for x in a] != [x.objects for x in c]


@pytest.mark.parametrize("max_objects", [2, 4])
def test_max_objects_bounds_every_scene_but_counting(max_objects):
    sizes = Counter()
    for it in spatial.generate("train", 80, seed=3, max_objects=max_objects):
        sizes[it.category, len(it.objects)] += 1
    for cat in spatial.CATEGORIES:
        seen = {n for (c, n) in sizes if c == cat}
        low = 2 if cat in ("spatial_relation", "adjacent_relation") else 1
        high = 4 if cat == "counting" else max_objects
        assert seen == set(range(low, high + 1)), (cat, seen)  # every allowed size occurs, no other


def test_max_objects_out_of_range_is_a_user_error():
    from projlab.data.sources import SpatialSource
    from projlab.errors import UserError

    with pytest.raises(UserError, match=r"data.max_objects=1 is not allowed; use 2..4"):
        SpatialSource("train", 4, 0, max_objects=1)


def _named(item, word):
    return next(o for o in item.objects if word in (o.shape, o.colour))


def test_every_answer_is_true_of_its_scene(items):
    half = spatial.CELLS // 2
    for it in items:
        shapes = [o.shape for o in it.objects]
        assert len(set(shapes)) == len(shapes) and len({o.colour for o in it.objects}) == len(shapes)
        words = it.question.split()
        if it.category == "counting":
            assert spatial.OPTIONS["counting"][len(it.objects) - 1] == it.answer_text
        elif it.category == "object_localization":
            row, col = _named(it, words[3]).cell
            quadrant = ("top" if row < half else "bottom") + "-" + ("left" if col < half else "right")
            assert quadrant == it.answer_text
        elif it.category == "spatial_relation":
            a, b = _named(it, words[3]).cell, _named(it, words[8]).cell
            truth = {"left": a[1] < b[1] and a[0] == b[0], "right": a[1] > b[1] and a[0] == b[0],
                     "above": a[0] < b[0] and a[1] == b[1], "below": a[0] > b[0] and a[1] == b[1]}
            assert truth[it.answer_text], (it.question, it.objects)
        elif it.category == "attribute":
            assert _named(it, words[4]).colour == it.answer_text
        elif it.category == "adjacent_relation":
            a, b = _named(it, words[3]), _named(it, words[8])
            assert a.layout == b.layout == spatial.FINE_CELLS
            step = {"left": (0, 1), "right": (0, -1), "above": (1, 0), "below": (-1, 0)}[it.answer_text]
            assert (b.cell[0] - a.cell[0], b.cell[1] - a.cell[1]) == step, (it.question, it.objects)
            others = [o for o in it.objects if o not in (a, b)]  # distractors keep off the pair's neighbours
            assert all(max(abs(o.cell[0] - p.cell[0]), abs(o.cell[1] - p.cell[1])) > 1 for o in others for p in (a, b))
        elif it.category == "stripes":
            named = _named(it, words[7])
            assert named.stripes == it.answer_text
            assert all(o.stripes is None for o in it.objects if o is not named)


@pytest.mark.parametrize("category", ["object_localization", "adjacent_relation"])
def test_render_draws_each_object_in_its_colour(items, category):
    it = next(i for i in items if i.category == category)
    img = np.asarray(spatial.render(it.objects))
    assert img.shape == (spatial.RENDER_SIZE, spatial.RENDER_SIZE, 3)
    for obj in it.objects:
        cell = spatial.RENDER_SIZE / obj.layout
        cy, cx = int((obj.cell[0] + 0.5) * cell), int((obj.cell[1] + 0.5) * cell)
        assert tuple(img[cy, cx]) == spatial.COLOURS[obj.colour]


def _grating_contrast(orientation: str, resolution: int) -> float:
    """Std of the pixels inside a striped square, rendered and resized as the tower resizes it."""
    from PIL import Image

    obj = spatial.SceneObject("square", "red", (1, 1), (0.0, 0.0), spatial.CELLS, orientation)
    img = np.asarray(spatial.render([obj]).resize((resolution, resolution), Image.BICUBIC)).astype(float)
    c = resolution // 4
    inner = img[c + c // 4 : 2 * c - c // 4, c + c // 4 : 2 * c - c // 4, 0]  # the red channel, inside the square
    return float(inner.std())


@pytest.mark.parametrize("orientation", spatial.OPTIONS["stripes"])
def test_stripes_vanish_at_112_px_and_show_at_168_and_224(orientation):
    """The pixel-detail category: at 112 px the resize leaves almost a uniform shade; at 168 px the grating
    keeps several times that contrast, at 224 more (measured std of the red channel: 0.5-5.1 at 112,
    16-30 at 168, 34-43 at 224)."""
    low, mid, high = (_grating_contrast(orientation, r) for r in (112, 168, 224))
    assert low < 6 and mid > 3 * low + 10 and high > mid, (orientation, low, mid, high)


def test_stripe_orientations_are_four_distinct_gratings():
    shades = [spatial.stripe_shade(o, 64, 8.0) for o in spatial.OPTIONS["stripes"]]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(shades[i], shades[j])
    assert all(s.min() >= spatial.STRIPE_SHADE - 1e-9 and s.max() <= 1 + 1e-9 for s in shades)


def test_processor_expands_the_image_and_masks_all_but_the_answer(items):
    tok = build_tokenizer(tiny_words())
    image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    proc = TextProcessor(tok, num_visual_tokens=16, image_token_id=image_id, template="plain")
    it = items[0]
    ex = proc.example(it.question, it.answer_text)
    assert ex["input_ids"].count(image_id) == 16
    kept = [t for t, l in zip(ex["input_ids"], ex["labels"]) if l != -100]
    assert tok.decode(kept) == it.answer_text
    assert tok.unk_token_id not in ex["input_ids"]  # the vocabulary covers every prompt
    assert build_prompt(it.question).count(IMAGE_TOKEN) == 1
