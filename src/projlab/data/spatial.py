"""The built-in spatial benchmark: rendered scenes and MMBench-style multiple-choice questions.

Each scene has objects of distinct shapes and distinct colours placed in the cells of a layout, drawn once
at RENDER_SIZE pixels; the tower's preprocessing resizes the image to the run's resolution (bicubic,
antialiased), as a real image is resized, so the resolution decides how much detail reaches the tower.
Questions come in six categories; the answer is drawn first, exactly balanced over the options of each
category, and the scene is then built to satisfy it, so a model that ignores the image sits at chance (25%).

On the coarse CELLS x CELLS layout (objects of 20 px at 112 px):
- `object_localization` (spatial): which quadrant holds the named object;
- `spatial_relation` (spatial): where one named object is relative to another on its row or column;
- `counting` (no locality needed): how many objects (1-4);
- `attribute` (no locality needed): the colour of the object of a named shape;
- `stripes` (needs pixels): which way the stripes on the named object run. The stripes are a sinusoidal
  shade of the object's colour with a period of STRIPE_PERIOD px at RENDER_SIZE along each axis they vary on:
  1.4 px at 112 px, finer than the resized image can hold (the resize filters them out, leaving a uniform
  shade: 0.3% of their contrast remains on the diagonals, 3.5% on the horizontal and vertical ones), 2.1 px
  at 168 and 2.8 px at 224, where they show (30-80% of their contrast).
On the fine FINE_CELLS x FINE_CELLS layout (objects of 8 px at 112 px, one cell per token of a 12 x 12 grid):
- `adjacent_relation` (spatial, needs fine tokens): where one named object is relative to the object in the
  next cell (left/right/above/below). Pooled to 4 x 4 tokens, two neighbours share a token two times in
  three; to 8 x 8, one time in three; to 12 x 12, never.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (60, 100, 240), "yellow": (235, 210, 40)}
BACKGROUND = (24, 24, 24)
CELLS = 4  # the coarse layout is CELLS x CELLS; a quadrant is (CELLS/2)^2 cells
FINE_CELLS = 12  # the fine layout of adjacent_relation
MAX_OBJECTS = 2  # objects per scene outside counting: the named one(s) and at most one distractor
RENDER_SIZE = 448  # every scene is drawn at this size (4 x 112, 2 x 224)
OBJECT_SIZE = {CELLS: 0.36, FINE_CELLS: 0.42}  # half-size of an object, in cells of its layout
STRIPE_PERIOD = 5.6  # px at RENDER_SIZE, along x and/or y
STRIPE_SHADE = 0.3  # the darkest shade of a striped object: its colour times this

OPTIONS: dict[str, tuple[str, ...]] = {
    "object_localization": ("top-left", "top-right", "bottom-left", "bottom-right"),
    "spatial_relation": ("left", "right", "above", "below"),
    "counting": ("one", "two", "three", "four"),
    "attribute": tuple(COLOURS),
    "adjacent_relation": ("left", "right", "above", "below"),
    "stripes": ("horizontal", "vertical", "rising", "falling"),
}
CATEGORIES = tuple(OPTIONS)
SPATIAL_CATEGORIES = ("object_localization", "spatial_relation", "adjacent_relation")  # need locality
PIXEL_CATEGORIES = ("stripes",)  # need resolution
LAYOUT = {c: FINE_CELLS if c == "adjacent_relation" else CELLS for c in CATEGORIES}
LETTERS = "ABCD"

# Spatial questions name objects by colour (a lookup the features make easy), so that what they test is
# where; the attribute question names an object by shape and asks its colour (binding, no locality).
QUESTION = {
    "object_localization": "where is the {a} object ?",
    "spatial_relation": "where is the {a} object relative to the {b} object ?",
    "counting": "how many objects are there ?",
    "attribute": "what colour is the {a} ?",
    "adjacent_relation": "where is the {a} object relative to the {b} object ?",
    "stripes": "which way do the stripes on the {a} object run ?",
}


@dataclass
class SceneObject:
    shape: str
    colour: str
    cell: tuple[int, int]  # (row, col) in the layout x layout grid
    jitter: tuple[float, float] = (0.0, 0.0)  # offset within the cell, in cell fractions
    layout: int = CELLS
    stripes: str | None = None  # one of OPTIONS["stripes"], or plain


@dataclass
class Item:
    """One multiple-choice question about one image (the schema every benchmark reader also produces)."""

    id: str
    question: str
    options: dict[str, str]  # letter -> option text
    answer: str  # letter
    category: str
    objects: list[SceneObject] = field(default_factory=list)
    target: str | None = None  # free-form answer (instruction data without options)

    @property
    def answer_text(self) -> str:
        return self.target if self.target is not None else self.options[self.answer]


def _outline(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        s = 0.85 * r
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif shape == "cross":
        t = 0.35 * r
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)


@functools.lru_cache(maxsize=16)
def stripe_shade(orientation: str, size: int, period: float = STRIPE_PERIOD) -> np.ndarray:
    """(size, size) factors in [STRIPE_SHADE, 1]: a sinusoidal grating of stripes running `orientation`
    (`rising`: from bottom left to top right), in image coordinates, `period` px along each axis it varies on."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    t = {"horizontal": y, "vertical": x, "rising": x + y, "falling": x - y}[orientation]
    wave = 0.5 + 0.5 * np.cos(2 * np.pi * t / period)
    return 1.0 - (1.0 - STRIPE_SHADE) * wave


def render(objects: list[SceneObject], size: int = RENDER_SIZE) -> Image.Image:
    """Draw the scene at `size` x `size` pixels (RENDER_SIZE unless a test asks for another)."""
    img = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for obj in objects:
        cell = size / obj.layout
        r = OBJECT_SIZE[obj.layout] * cell
        cx = (obj.cell[1] + 0.5 + 0.12 * obj.jitter[0]) * cell
        cy = (obj.cell[0] + 0.5 + 0.12 * obj.jitter[1]) * cell
        _outline(draw, obj.shape, cx, cy, r, COLOURS[obj.colour])
        if obj.stripes:  # shade the object's own pixels by the grating
            mask = Image.new("L", (size, size), 0)
            _outline(ImageDraw.Draw(mask), obj.shape, cx, cy, r, 255)
            inside = np.asarray(mask) > 0
            shade = stripe_shade(obj.stripes, size, STRIPE_PERIOD * size / RENDER_SIZE)
            pixels = np.asarray(img).copy()
            pixels[inside] = (np.array(COLOURS[obj.colour]) * shade[inside, None]).round().astype(np.uint8)
            img = Image.fromarray(pixels)
            draw = ImageDraw.Draw(img)
    return img


def _objects(rng: random.Random, cells: list[tuple[int, int]], layout: int = CELLS) -> list[SceneObject]:
    shapes = rng.sample(SHAPES, len(cells))
    colours = rng.sample(list(COLOURS), len(cells))
    return [
        SceneObject(s, c, cell, (rng.uniform(-1, 1), rng.uniform(-1, 1)), layout)
        for s, c, cell in zip(shapes, colours, cells)
    ]


def _free_cells(rng: random.Random, taken: list[tuple[int, int]], k: int, layout: int = CELLS,
                margin: int = 0) -> list[tuple[int, int]]:
    """`k` cells of the layout at Chebyshev distance > `margin` from every taken cell."""
    free = [(r, c) for r in range(layout) for c in range(layout)
            if all(max(abs(r - tr), abs(c - tc)) > margin for tr, tc in taken)]
    return rng.sample(free, k)


def make_item(
    category: str, answer_index: int, rng: random.Random, item_id: str, max_objects: int = MAX_OBJECTS
) -> Item:
    """A question of `category` whose correct option is OPTIONS[category][answer_index].

    `max_objects` bounds the scene for every category but counting (whose answer needs 1-4 objects); each
    distractor beyond the named objects makes the question a harder lookup."""
    answer = OPTIONS[category][answer_index]
    fmt: dict[str, str] = {}
    if category == "counting":
        objects = _objects(rng, _free_cells(rng, [], answer_index + 1))
    elif category == "object_localization":
        half = CELLS // 2
        qr, qc = divmod(answer_index, 2)  # top-left, top-right, bottom-left, bottom-right
        target = (qr * half + rng.randrange(half), qc * half + rng.randrange(half))
        cells = [target] + _free_cells(rng, [target], rng.randint(0, max_objects - 1))
        objects = _objects(rng, cells)
        fmt["a"] = objects[0].colour
    elif category == "spatial_relation":
        # same row for left/right, same column for above/below: the relation is never ambiguous
        line, a, b = rng.randrange(CELLS), *sorted(rng.sample(range(CELLS), 2))
        first, second = (a, b) if answer in ("left", "above") else (b, a)
        if answer in ("left", "right"):
            cells = [(line, first), (line, second)]
        else:
            cells = [(first, line), (second, line)]
        cells += _free_cells(rng, cells, rng.randint(0, max_objects - 2))
        objects = _objects(rng, cells)
        fmt["a"], fmt["b"] = objects[0].colour, objects[1].colour
    elif category == "adjacent_relation":
        # the named object and its neighbour in the next cell; distractors keep a free ring around the pair
        n = FINE_CELLS
        if answer in ("left", "right"):
            row, col = rng.randrange(n), rng.randrange(n - 1)
            pair = [(row, col), (row, col + 1)]
        else:
            row, col = rng.randrange(n - 1), rng.randrange(n)
            pair = [(row, col), (row + 1, col)]
        if answer in ("right", "below"):
            pair.reverse()  # the named object second in reading order
        cells = pair + _free_cells(rng, pair, rng.randint(0, max_objects - 2), n, margin=1)
        objects = _objects(rng, cells, n)
        fmt["a"], fmt["b"] = objects[0].colour, objects[1].colour
    elif category == "attribute":
        cells = _free_cells(rng, [], rng.randint(1, max_objects))
        objects = _objects(rng, cells)
        colours = [o.colour for o in objects]
        if answer in colours:  # give the answer colour to the first object, swapping with its holder
            objects[colours.index(answer)].colour = objects[0].colour
        objects[0].colour = answer
        fmt["a"] = objects[0].shape
    elif category == "stripes":
        objects = _objects(rng, _free_cells(rng, [], rng.randint(1, max_objects)))
        objects[0].stripes = answer
        fmt["a"] = objects[0].colour
    else:
        raise ValueError(f"unknown category {category!r}")
    rng.shuffle(objects)  # the named object is not always drawn first
    options = dict(zip(LETTERS, OPTIONS[category]))
    return Item(item_id, QUESTION[category].format(**fmt), options, LETTERS[answer_index], category, objects)


def generate(
    split: str, size_per_category: int, seed: int, max_objects: int = MAX_OBJECTS,
    categories: tuple[str, ...] = CATEGORIES,
) -> list[Item]:
    """`size_per_category` questions per category, answers exactly balanced (size must be a multiple of 4
    for exact balance; otherwise the first options get one more), deterministic in (split, seed, category)."""
    items = []
    for category in categories:
        rng = random.Random(f"{seed}/{split}/{category}")  # a category's questions do not depend on the others
        n_opt = len(OPTIONS[category])
        for i in range(size_per_category):
            items.append(make_item(category, i % n_opt, rng, f"{split}-{category}-{i}", max_objects))
    random.Random(f"{seed}/{split}").shuffle(items)
    return items


def vocabulary() -> list[str]:
    """Every word the benchmark's prompts and answers use (the tiny tokenizer is built from it)."""
    words = {w for q in QUESTION.values() for w in q.split() if not w.startswith("{")}
    words |= set(SHAPES) | set(COLOURS)
    for opts in OPTIONS.values():
        words |= set(opts)
    return sorted(words)
