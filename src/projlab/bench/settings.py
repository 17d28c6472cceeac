"""The bench's settings: the full run (sized to finish well inside 10 minutes on the shared 2-core CPU) and
`--quick` (seconds: every section runs, at toy sizes), and the command line that picks and adjusts them."""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from projlab.bench.arms import HONEYBEE, REFERENCE
from projlab.bench.cards import BF16_DENSE_TFLOPS
from projlab.bench.presets import MID_LLM, MID_VISION, PRESETS
from projlab.cli import ArgumentParser, positive_int
from projlab.errors import UserError
from projlab.models.presets import TINY_LLM, TINY_VISION
from projlab.training.precision import resolve_precision

PEAK_TFLOPS_H100_BF16 = BF16_DENSE_TFLOPS["H100"]  # dense bf16 tensor-core peak of an H100 SXM


@dataclass
class Settings:
    quick: bool = False
    presets: tuple[str, ...] = PRESETS
    tokens: tuple[int, ...] = (64, 144, 256)
    batch_size: dict[str, int] = field(default_factory=lambda: {"tiny": 8, "mid": 4})  # sections 1 and 3
    repeats: dict[str, int] = field(default_factory=lambda: {"tiny": 7, "mid": 4})  # timed rounds per arm
    overhead_batch: int | None = None  # None: the recipe's (stage.batch_size, 32)
    per_category: int = 16  # training questions per category for the loader and the overhead run
    overhead_steps: int = 30  # timed steps per block, per loop
    overhead_warmup: int = 5
    overhead_blocks: int = 2
    pipeline_batches: int = 10
    paper_batch: int = 1
    paper_repeats: int = 2
    paper_timed: tuple[str, ...] = HONEYBEE  # the others: counts only (each paper-size forward costs seconds)
    profile_tokens: tuple[int, ...] = (16, 144)  # the recipe's projector profiled at these M, its own batch
    profile_steps: int = 5
    device: str = "cpu"
    precision: str = "auto"  # resolved in `parse`, as a run resolves it
    peak_precisions: tuple[str, ...] = ("32-true", "bf16-mixed")  # the roofline measures each
    peak_tflops: float | None = None
    threads: int | None = None  # torch intra-op threads; None: torch's default (what a training run uses)

    def as_dict(self) -> dict:
        return asdict(self)


QUICK = dict(
    presets=("tiny",), tokens=(64,), batch_size={"tiny": 4, "mid": 2}, repeats={"tiny": 2, "mid": 2},
    overhead_batch=4, per_category=4, overhead_steps=4,
    overhead_warmup=1, overhead_blocks=1, pipeline_batches=3, paper_repeats=1, paper_timed=(REFERENCE,),
    profile_tokens=(16,), profile_steps=2,
)

def _describe(vision: dict, llm: dict) -> str:
    side = vision["image_size"] // vision["patch_size"]
    return (f"CLIP hidden {vision['hidden_size']}, {vision['num_hidden_layers']} layers, patch {vision['patch_size']} "
            f"at {vision['image_size']} px ({side}x{side} grid); Llama hidden {llm['hidden_size']}, "
            f"{llm['num_hidden_layers']} layers, FFN {llm['intermediate_size']}")


PRESET_DOC = {
    "tiny": "the project's tiny preset: " + _describe(TINY_VISION, TINY_LLM),
    "mid": _describe(MID_VISION, MID_LLM) + " (built from configs, saved under the cache folder, loaded with "
           "from_pretrained, as the tiny preset)",
}


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _presets(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in PRESETS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated subset of {','.join(PRESETS)}")
    return tuple(p for p in PRESETS if p in names)  # smallest first: the overhead bench runs on the first


def parse(argv: list[str] | None) -> tuple[Settings, str]:
    """Settings and output folder from the command line; a mistake is a UserError (one line, exit 2)."""
    parser = ArgumentParser(prog="python -m projlab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, under a minute (the smoke test)")
    parser.add_argument("--out", default="bench", help="output folder (default bench/)")
    parser.add_argument("--presets", type=_presets, help="comma-separated: tiny,mid (default both; quick: tiny)")
    parser.add_argument("--repeats", type=positive_int, help="timed rounds per arm (default tiny 7, mid 4; quick: 2)")
    parser.add_argument("--batch-size", type=positive_int, help="one batch size for every preset and section "
                        "(default tiny 8, mid 4, and the recipe's 32 for the overhead; quick: 4, 2, 4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    parser.add_argument("--precision", choices=("auto", "32-true", "bf16-mixed"), default="auto",
                        help="bf16-mixed: bf16 autocast around the forward, as Lightning's precision plugin; "
                        "auto (default): as a run resolves trainer.precision=auto on this machine")
    parser.add_argument("--peak-tflops", type=_positive_float, help="peak FLOP/s of the device for MFU "
                        f"(default on cuda: {PEAK_TFLOPS_H100_BF16:g}, an H100's dense bf16: give the fp32/TF32 peak "
                        "with --precision 32-true; on cpu: no MFU unless given)")
    parser.add_argument("--threads", type=positive_int, help="torch intra-op threads (default: torch's, as a run)")
    args = parser.parse_args(argv)
    s = Settings(**QUICK, quick=True) if args.quick else Settings()
    if args.presets:
        s.presets = args.presets
    if args.repeats:
        s.repeats = {p: args.repeats for p in PRESETS}
    if args.batch_size:
        s.batch_size = {p: args.batch_size for p in PRESETS}
        s.overhead_batch = args.batch_size
    s.device, s.threads = args.device, args.threads
    s.precision = resolve_precision(args.precision, args.device)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible to torch on this machine")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out}: exists and is not a folder")
    s.peak_tflops = args.peak_tflops or (PEAK_TFLOPS_H100_BF16 if args.device == "cuda" else None)
    return s, args.out
