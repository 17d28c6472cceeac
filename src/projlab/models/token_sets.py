"""Serving every token count M a projector serves: once for a projector with one M, once per M of its set for
an elastic one (`Projector.token_set`), the projector emitting that M and the prompts expanding each `<image>`
to as many image tokens, so the LLM's sequence follows M."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, TypeVar

from projlab.data.prompt import TextProcessor
from projlab.projectors.base import Projector

T = TypeVar("T")


def token_order(projector: Projector) -> list[int]:
    """The Ms the projector serves, ascending, its built M last: what a caller reads after the loop (the
    module's last test, its predictions) is the built M's."""
    return [m for m in projector.token_set if m != projector.built_tokens] + [projector.built_tokens]


def at_each_m(projector: Projector, processor: TextProcessor, score: Callable[[TextProcessor], T]) -> dict[int, T]:
    """{M: score(processor at M)} for every M the projector serves, each scored while it emits that M."""
    out: dict[int, T] = {}
    for m in token_order(projector):
        with projector.emitting(m):
            out[m] = score(replace(processor, num_visual_tokens=m))
    return {m: out[m] for m in sorted(out)}


def is_elastic(projector: Projector) -> bool:
    """Serves more than one M (results then hold its scores per M: `by_tokens`)."""
    return len(projector.token_set) > 1
