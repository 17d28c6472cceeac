"""A record of instruction data as LLaVA publishes it (llava_v1_5_mix665k.json's shape), read into one
`Conversation`: every turn of the record, trained as one sequence.

    {"id": ..., "image": "coco/train2017/000000033471.jpg",      # absent: a text-only record
     "conversations": [{"from": "human", "value": "<image>\\nWhat is in the picture?"},
                       {"from": "gpt", "value": "..."}, {"from": "human", "value": "..."}, ...]}

As LLaVA reads them: a first turn that is not the human's is skipped, a last human turn without an answer
teaches nothing and is left out. A record with an image holds exactly one `<image>`, in any human turn,
and it stays where the record put it; a text-only record holds none.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from projlab.errors import UserError

IMAGE_TOKEN = "<image>"  # where an image goes in a prompt or a record's turn (the tokenizer's special token)

ROLES = ("human", "gpt")


@dataclass
class Conversation:
    id: str
    turns: list[tuple[str, str]]  # (human message, assistant answer), in order
    has_image: bool
    category: str = "llava"
    options: dict[str, str] = field(default_factory=dict)  # none: free-form, judged by its loss


def read_record(rec: Any, n: int, where: Path, image_root: Path) -> tuple[Conversation, Path | None]:
    """The `n`-th record of file `where` -> (its conversation, its image file or None)."""
    if not isinstance(rec, dict):
        raise UserError(f"{where}: record {n} is a {type(rec).__name__}; expected an object with 'conversations'")
    rid = str(rec.get("id", n))
    turns = rec.get("conversations")
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise UserError(f"{where}: record {rid!r} has no 'conversations' list of turns")
    if turns and turns[0].get("from") != "human":
        turns = turns[1:]
    pairs = []
    for human, gpt in zip(turns[::2], turns[1::2]):
        if (human.get("from"), gpt.get("from")) != ROLES:
            raise UserError(f"{where}: record {rid!r}: turns must alternate human, gpt")
        pairs.append((str(human.get("value", "")), str(gpt.get("value", ""))))
    if not pairs:
        raise UserError(f"{where}: record {rid!r} has no human turn with an answer")
    slots = sum(human.count(IMAGE_TOKEN) for human, _ in pairs)
    image = rec.get("image")
    if image is None:
        if slots:
            raise UserError(f"{where}: record {rid!r} has no 'image' but holds {IMAGE_TOKEN}; give its image or drop "
                            "the placeholder")
        return Conversation(rid, pairs, has_image=False), None
    path = image_root / str(image)
    if not path.is_file():
        raise UserError(f"{where}: record {rid!r}: image file '{path}' does not exist")
    if slots != 1:
        raise UserError(f"{where}: record {rid!r} holds {slots} {IMAGE_TOKEN} placeholders in its human turns; "
                        "a record with an image needs exactly one")
    return Conversation(rid, pairs, has_image=True), path
