"""Data sources: a split's questions, its images, and a signature that identifies them (for the cache)."""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from PIL import Image

from projlab.data import spatial
from projlab.data.spatial import Item
from projlab.errors import UserError
from projlab.models.language import IMAGE_TOKEN


class Source(Protocol):
    items: list[Item]

    def image(self, i: int) -> Image.Image: ...

    def signature(self) -> str: ...


@dataclass
class SpatialSource:
    """A split of the built-in spatial benchmark (scenes drawn at `spatial.RENDER_SIZE`; the tower resizes
    them to its resolution).

    `scramble=True` is the locality-destroying control: each image's layout cells are permuted (a fixed
    random permutation per question), so every object keeps its shape, colour and count but lands in a
    random place; the questions and answers are unchanged. It destroys locality in the pixels, whatever
    the tower's features or the projector do with positions."""

    split: str
    size_per_category: int
    seed: int
    scramble: bool = False
    max_objects: int = spatial.MAX_OBJECTS
    categories: tuple[str, ...] = spatial.CATEGORIES
    items: list[Item] = field(init=False)

    def __post_init__(self) -> None:
        if self.size_per_category < 1:
            raise UserError(f"split {self.split!r} is empty: size_per_category={self.size_per_category}; give >= 1")
        if not 2 <= self.max_objects <= len(spatial.SHAPES):
            raise UserError(f"data.max_objects={self.max_objects} is not allowed; use 2..{len(spatial.SHAPES)}")
        self.categories = tuple(self.categories)
        unknown = [c for c in self.categories if c not in spatial.CATEGORIES]
        if unknown or not self.categories:
            raise UserError(f"data.categories: {unknown[0] if unknown else '[]'!r} is not a category; "
                            f"known: {', '.join(spatial.CATEGORIES)}")
        self.items = spatial.generate(self.split, self.size_per_category, self.seed, self.max_objects, self.categories)

    def image(self, i: int) -> Image.Image:
        item = self.items[i]
        objects = item.objects
        if self.scramble:
            layout = objects[0].layout
            cells = [(r, c) for r in range(layout) for c in range(layout)]
            moved = dict(zip(cells, random.Random(f"scramble/{item.id}").sample(cells, len(cells))))
            objects = [replace(o, cell=moved[o.cell]) for o in objects]
        return spatial.render(objects)

    def signature(self) -> str:
        scrambled = "/scrambled" if self.scramble else ""
        return (f"spatial-v3/{self.split}/{self.size_per_category}/{self.seed}/{self.max_objects}/"
                f"{','.join(self.categories)}/{spatial.RENDER_SIZE}{scrambled}")


@dataclass
class LlavaSource:
    """Instruction data in LLaVA's conversation JSON: [{"id", "image", "conversations": [{"from": "human",
    "value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}]. Each (human, gpt) pair of a record
    becomes one example on that record's image; the first human turn must hold the `<image>` placeholder."""

    json_path: str
    image_root: str
    items: list[Item] = field(init=False)
    _images: list[Path] = field(init=False)

    def __post_init__(self) -> None:
        path = Path(self.json_path)
        if not path.is_file():
            raise UserError(f"LLaVA data file '{path}' does not exist")
        try:
            records = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"LLaVA data file '{path}' is not valid JSON: {err}") from err
        if not isinstance(records, list) or not records:
            raise UserError(f"LLaVA data file '{path}' holds no records; expected a non-empty JSON list")
        self.items, self._images = [], []
        for n, rec in enumerate(records):
            rid = str(rec.get("id", n))
            turns = rec.get("conversations") or []
            if "image" not in rec:
                raise UserError(f"{path}: record {rid!r} has no 'image'; expected an image path")
            image = Path(self.image_root) / rec["image"]
            if not image.is_file():
                raise UserError(f"{path}: record {rid!r}: image file '{image}' does not exist")
            if not turns or IMAGE_TOKEN not in turns[0].get("value", ""):
                raise UserError(f"{path}: record {rid!r} has no {IMAGE_TOKEN} placeholder in its first human turn")
            pairs = [(turns[i], turns[i + 1]) for i in range(0, len(turns) - 1, 2)]
            for k, (human, gpt) in enumerate(pairs):
                if human.get("from") != "human" or gpt.get("from") != "gpt":
                    raise UserError(f"{path}: record {rid!r}: turns must alternate human, gpt")
                self.items.append(Item(f"{rid}-{k}", human["value"], {}, "", "llava", target=gpt["value"]))
                self._images.append(image)

    def image(self, i: int) -> Image.Image:
        with Image.open(self._images[i]) as im:
            return im.convert("RGB")

    def signature(self) -> str:
        h = hashlib.sha256(Path(self.json_path).read_bytes())
        for p in sorted(set(self._images)):
            h.update(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode())
        return f"llava/{h.hexdigest()[:16]}"
