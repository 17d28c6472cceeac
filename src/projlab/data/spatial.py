"""The built-in spatial benchmark: rendered scenes and MMBench-style multiple-choice questions.

Each scene has objects of distinct shapes and distinct colours, placed in the cells of a 4x4 layout: 1-4
for counting, at most `max_objects` (default 2) for the other questions. Questions come in four
categories; the answer is drawn first, exactly balanced over the options of each category, and the scene
is then built to satisfy it, so a model that ignores the image sits at chance (25%):

- `object_localization` (spatial): which quadrant holds the named object;
- `spatial_relation` (spatial): where one named object is relative to another (left/right/above/below);
- `counting` (control: no locality needed): how many objects;
- `attribute` (control: no locality needed): the colour of the object of a named shape.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (60, 100, 240), "yellow": (235, 210, 40)}
BACKGROUND = (24, 24, 24)
CELLS = 4  # the layout is CELLS x CELLS; a quadrant is (CELLS/2)^2 cells
MAX_OBJECTS = 2  # objects per scene outside counting: the named one(s) and at most one distractor

OPTIONS: dict[str, tuple[str, ...]] = {
    "object_localization": ("top-left", "top-right", "bottom-left", "bottom-right"),
    "spatial_relation": ("left", "right", "above", "below"),
    "counting": ("one", "two", "three", "four"),
    "attribute": tuple(COLOURS),
}
CATEGORIES = tuple(OPTIONS)
SPATIAL_CATEGORIES = ("object_localization", "spatial_relation")
LETTERS = "ABCD"

# Spatial questions name objects by colour (a lookup the features make easy), so that what they test is
# where; the attribute question names an object by shape and asks its colour (binding, no locality).
QUESTION = {
    "object_localization": "where is the {a} object ?",
    "spatial_relation": "where is the {a} object relative to the {b} object ?",
    "counting": "how many objects are there ?",
    "attribute": "what colour is the {a} ?",
}


@dataclass
class SceneObject:
    shape: str
    colour: str
    cell: tuple[int, int]  # (row, col) in the CELLS x CELLS layout
    jitter: tuple[float, float] = (0.0, 0.0)  # offset within the cell, in cell fractions


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


def render(objects: list[SceneObject], resolution: int) -> Image.Image:
    """Draw the scene at `resolution` x `resolution` pixels."""
    img = Image.new("RGB", (resolution, resolution), BACKGROUND)
    draw = ImageDraw.Draw(img)
    cell = resolution / CELLS
    r = 0.36 * cell  # object half-size
    for obj in objects:
        cx = (obj.cell[1] + 0.5 + 0.12 * obj.jitter[0]) * cell
        cy = (obj.cell[0] + 0.5 + 0.12 * obj.jitter[1]) * cell
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif obj.shape == "square":
            s = 0.85 * r
            draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
        elif obj.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        elif obj.shape == "cross":
            t = 0.35 * r
            draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
            draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)
    return img


def _objects(rng: random.Random, cells: list[tuple[int, int]]) -> list[SceneObject]:
    shapes = rng.sample(SHAPES, len(cells))
    colours = rng.sample(list(COLOURS), len(cells))
    return [
        SceneObject(s, c, cell, (rng.uniform(-1, 1), rng.uniform(-1, 1)))
        for s, c, cell in zip(shapes, colours, cells)
    ]


def _free_cells(rng: random.Random, taken: list[tuple[int, int]], k: int) -> list[tuple[int, int]]:
    free = [(r, c) for r in range(CELLS) for c in range(CELLS) if (r, c) not in taken]
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
    elif category == "attribute":
        cells = _free_cells(rng, [], rng.randint(1, max_objects))
        objects = _objects(rng, cells)
        colours = [o.colour for o in objects]
        if answer in colours:  # give the answer colour to the first object, swapping with its holder
            objects[colours.index(answer)].colour = objects[0].colour
        objects[0].colour = answer
        fmt["a"] = objects[0].shape
    else:
        raise ValueError(f"unknown category {category!r}")
    rng.shuffle(objects)  # the named object is not always drawn first
    options = dict(zip(LETTERS, OPTIONS[category]))
    return Item(item_id, QUESTION[category].format(**fmt), options, LETTERS[answer_index], category, objects)


def generate(split: str, size_per_category: int, seed: int, max_objects: int = MAX_OBJECTS) -> list[Item]:
    """`size_per_category` questions per category, answers exactly balanced (size must be a multiple of 4
    for exact balance; otherwise the first options get one more), deterministic in (split, seed)."""
    rng = random.Random(f"{seed}/{split}")
    items = []
    for category in CATEGORIES:
        n_opt = len(OPTIONS[category])
        for i in range(size_per_category):
            items.append(make_item(category, i % n_opt, rng, f"{split}-{category}-{i}", max_objects))
    rng.shuffle(items)
    return items


def vocabulary() -> list[str]:
    """Every word the benchmark's prompts and answers use (the tiny tokenizer is built from it)."""
    words = {w for q in QUESTION.values() for w in q.split() if not w.startswith("{")}
    words |= set(SHAPES) | set(COLOURS)
    for opts in OPTIONS.values():
        words |= set(opts)
    return sorted(words)
