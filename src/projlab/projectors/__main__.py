"""`python -m projlab.projectors --table`: every registered projector's size and cost at one configuration.

    python -m projlab.projectors --table [--vision-dim 1024 --llm-dim 4096 --grid 16 --tokens 144]

Prints a Markdown table: name, M (the projector's own number of visual tokens), parameters (counted from the
module as built, on the meta device), of which positional embedding, forward GFLOPs per sample
(FlopCounterMode: matmuls, convolutions, attention) and the init scheme its defaults build with
(`projlab.projectors.init`) and the source whose design it follows. `--tokens` goes to the projectors that take a token
count (learned queries, square pooling); block projectors (`pixel_shuffle`, `tokenpacker`) keep their
default r = 2 (M = N / 4, as InternVL and TokenPacker), per-patch projectors M = N, an elastic projector its
own token set (FLOPs at its largest M), and `blind` emits none. The controls
(`blind`, `shuffle`) are listed after a separator row.
"""
from __future__ import annotations

import argparse
import re
import sys

import torch

from projlab import markdown
from projlab.cli import ArgumentParser, positive_int
from projlab.errors import UserError, exit_on_user_error
from projlab.projectors import available_projectors, build_projector
from projlab.projectors.accounting import count_parameters, count_positional_parameters, projector_flops
from projlab.projectors.registry import projector_class


def _grid(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--grid {text!r}: give a side (16) or rows x cols (16x16)")
    rows = int(m.group(1))
    cols = int(m.group(2)) if m.group(2) else rows
    if rows < 1 or cols < 1:
        raise argparse.ArgumentTypeError(f"--grid {text!r}: sides must be positive")
    return rows, cols


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m projlab.projectors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="print the Markdown table of every projector")
    parser.add_argument("--vision-dim", type=positive_int, default=1024, help="vision feature width (default 1024)")
    parser.add_argument("--llm-dim", type=positive_int, default=4096, help="LLM width (default 4096)")
    parser.add_argument("--grid", type=_grid, default=(16, 16), help="patch grid: 16 or 16x16 (default 16)")
    parser.add_argument(
        "--tokens", type=positive_int, default=144, help="M for query and square-pooling projectors (default 144)"
    )
    args = parser.parse_args(argv)
    if not args.table:
        raise UserError("nothing to do: give --table (see python -m projlab.projectors --help)")
    return args


def _row(name: str, args: argparse.Namespace) -> list[str]:
    try:
        with torch.device("meta"):
            knobs = projector_class(name).table_request(args.tokens, args.grid)
            proj = build_projector(name, knobs, args.vision_dim, args.llm_dim, args.grid)
    except UserError:
        raise
    except (ValueError, AssertionError) as err:  # e.g. a width the heads do not divide
        msg = " ".join(str(err).split())
        raise UserError(
            f"projector {name!r} cannot be built at vision_dim={args.vision_dim}, llm_dim={args.llm_dim}, "
            f"grid={args.grid[0]}x{args.grid[1]}: {msg}"
        ) from None
    gflops = projector_flops(proj) / 1e9  # at the M it is built with (an elastic projector's largest)
    return [
        name,
        "/".join(map(str, proj.token_set)) if len(proj.token_set) > 1 else str(proj.num_visual_tokens),
        f"{count_parameters(proj):,}",
        f"{count_positional_parameters(proj):,}",
        f"{gflops:,.2f}",
        getattr(proj.config, "init", "-") if count_parameters(proj) else "-",
        proj.source or "-",
    ]


def table(args: argparse.Namespace) -> str:
    names = available_projectors()
    arms = [n for n in names if not projector_class(n).is_control]
    controls = [n for n in names if projector_class(n).is_control]
    rows, cols = args.grid
    header = ["projector", "M", "parameters", "of which pos_emb", "forward GFLOPs / sample", "init", "source"]
    lines = [
        f"Projectors at vision_dim={args.vision_dim} -> llm_dim={args.llm_dim}, grid {rows}x{cols} "
        f"(N={rows * cols}), --tokens {args.tokens} (query and square-pooling projectors only; block projectors "
        f"at r = 2, M = N / 4)",
        "",
    ]
    body = [_row(n, args) for n in arms]
    if controls:
        body += [["*controls*"] + [""] * (len(header) - 1), *(_row(n, args) for n in controls)]
    lines += markdown.table(header, body, "lrrrr")
    lines += [
        "",
        "FLOPs: torch.utils.flop_counter (a multiply-add is 2 FLOPs; matmuls, convolutions and attention only;",
        "element-wise ops, normalisation, softmax and grid_sample are not counted). init: reference = every",
        "Linear, Conv2d and Embedding N(0, 0.02) with zero bias, LayerNorms 1 / 0, as Honeybee builds a model",
        "for pre-training; pytorch = each module's own init. An elastic projector serves every M of its token",
        "set with one set of weights (M: the set); its FLOPs are those at the largest. source: the design it follows.",
    ]
    return "\n".join(lines)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    print(table(args))


if __name__ == "__main__":
    main(sys.argv[1:])
