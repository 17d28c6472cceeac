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
from projlab.data.conversation import Conversation, read_record
from projlab.data.spatial import Item
from projlab.errors import UserError

BLANK_SIDE = 32  # a text-only record's blank image (any size: the tower's processor resizes it)


class Source(Protocol):
    items: list[Item] | list[Conversation]

    def image(self, i: int) -> Image.Image: ...

    def has_image(self, i: int) -> bool: ...

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

    def has_image(self, i: int) -> bool:
        return True

    def signature(self) -> str:
        scrambled = "/scrambled" if self.scramble else ""
        return (f"spatial-v3/{self.split}/{self.size_per_category}/{self.seed}/{self.max_objects}/"
                f"{','.join(self.categories)}/{spatial.RENDER_SIZE}{scrambled}")


@dataclass
class LlavaSource:
    """Instruction data in LLaVA's conversation JSON (`projlab.data.conversation`): one item per record, every
    turn of it in one sequence. A text-only record's image is a blank one that nothing reads (its sequence
    holds no image tokens): every batch then has one image per sequence, as in LLaVA, and the same shapes."""

    json_path: str
    image_root: str
    items: list[Conversation] = field(init=False)
    _images: list[Path | None] = field(init=False)

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
        read = [read_record(rec, n, path, Path(self.image_root)) for n, rec in enumerate(records)]
        self.items = [conversation for conversation, _ in read]
        self._images = [image for _, image in read]

    def image(self, i: int) -> Image.Image:
        if self._images[i] is None:
            return Image.new("RGB", (BLANK_SIDE, BLANK_SIDE))
        with Image.open(self._images[i]) as im:
            return im.convert("RGB")

    def has_image(self, i: int) -> bool:
        return self._images[i] is not None

    def signature(self) -> str:
        h = hashlib.sha256(Path(self.json_path).read_bytes())
        for p in sorted({p for p in self._images if p is not None}):
            h.update(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode())
        return f"llava-v2/{h.hexdigest()[:16]}"  # v2: one item per record (v1: one per turn)
