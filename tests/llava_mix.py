"""A file shaped like llava_v1_5_mix665k.json, written for tests and trial runs: records with a JPEG or PNG in
nested folders (non-square), every tenth record text-only, 1-4 turns each, `<image>` before or after the
first question (and once in the second turn). The words are the built-in benchmark's, so the tiny
preset's tokenizer knows them.

    python tests/llava_mix.py OUT_FOLDER N      # writes OUT_FOLDER/mix.json and OUT_FOLDER/images/
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from projlab.data import spatial
from projlab.data.conversation import IMAGE_TOKEN


def mix_record(k: int, images: Path) -> dict:
    items = spatial.generate("mix", 1, seed=k)  # one question per category, each on its own scene
    turns = []
    for item in items[: k % 4 + 1]:
        turns += [{"from": "human", "value": item.question}, {"from": "gpt", "value": item.answer_text}]
    record: dict = {"id": f"mix-{k}", "conversations": turns}
    if k % 10 == 9:
        return record  # text-only
    where = 1 if k == 5 else 0  # the placeholder in the second human turn, once
    turn = turns[2 * where]
    turn["value"] = f"{IMAGE_TOKEN}\n{turn['value']}" if k % 3 else f"{turn['value']}\n{IMAGE_TOKEN}"
    name = f"coco/train2017/{k:06d}.jpg" if k % 2 else f"gqa/images/{k}.png"
    path = images / name
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = spatial.render(items[0].objects, 96)
    scene.resize((96, 64) if k % 2 else (64, 96)).save(path)
    record["image"] = name
    return record


def write_mix(folder: Path, n: int) -> tuple[Path, Path]:
    """(the JSON file, the image root) of `n` mix-like records under `folder`."""
    images = folder / "images"
    records = [mix_record(k, images) for k in range(n)]
    data = folder / "mix.json"
    data.write_text(json.dumps(records))
    return data, images


if __name__ == "__main__":
    print(*write_mix(Path(sys.argv[1]), int(sys.argv[2])))
