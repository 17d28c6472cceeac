"""Score a trained run on a benchmark and write the scores into that run's results.json.

    python -m projlab.evaluation.evaluate --run runs/<sweep>/<arm> --bench mmbench --data MMBench_DEV_EN.tsv
    python -m projlab.evaluation.evaluate --run runs/<sweep>/<arm> --bench spatial
    python -m projlab.evaluation.evaluate --run runs/<sweep>/<arm> --bench mme --data MME/ --mode generate

`--mode likelihood` (the default) answers every question by option likelihood (the SEED-Bench rule;
MMBench's circular copies are each answered the same way); `--mode generate` writes each answer out
(`projlab.evaluation.generate`) and reads it as the peers read text (`projlab.evaluation.answers`). Then the
benchmark's own rules score it. The scores land in `metrics.benchmarks.<bench>` of results.json (everything
else kept) with the mode as `answered_by`, the predictions beside it. An elastic projector (several token
counts M, one set of weights) is scored at every M of its set: the scores at its built M, and under
`by_tokens` ({"<M>": scores}) those at each M.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from PIL import Image

from projlab import build
from projlab.cli import ArgumentParser, positive_int
from projlab.console import quiet_third_party
from projlab.data.spatial import LETTERS
from projlab.errors import UserError, exit_on_user_error
from projlab.evaluation.benchmarks import BENCHMARKS, load_benchmark, records_to_answer, score_benchmark
from projlab.evaluation.checkpoint_eval import evaluate_checkpoint
from projlab.models.token_sets import at_each_m, is_elastic
from projlab.evaluation.generate import Decoding, add_decoding_arguments, answer_in_text, decoding_from
from projlab.io import write_json
from projlab.results import read_results, update_results
from projlab.training.likelihood import choose, option_batch

MODES = ("likelihood", "generate")  # how a question is answered: option likelihood, or text written out


def visual_tokens_once(model, images: list[Image.Image]) -> torch.Tensor:
    """Visual tokens (B, M, C_llm) of `images`, the tower and projector run once per distinct image: the
    circular copies of an MMBench question share theirs (a quarter of the tower's work at four options)."""
    keys = [(im.mode, im.size, hashlib.sha1(im.tobytes()).digest()) for im in images]
    first: dict[tuple, int] = {}
    rows = [first.setdefault(k, len(first)) for k in keys]
    unique = [images[keys.index(k)] for k in first]
    return model.encode_images(model.vision.preprocess(unique))[torch.tensor(rows)]


@torch.no_grad()
def answer(module, processor, records, batch_size: int = 16) -> dict[str, str]:
    """{record id: chosen option key} for `records` (each with .question, .options and .image())."""
    model = module.model
    preds: dict[str, str] = {}
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        visual = visual_tokens_once(model, [r.image() for r in chunk]) if model.num_visual_tokens else None
        chosen, _ = choose(model, option_batch(chunk, processor), visual, len(chunk))
        for record, best in zip(chunk, chosen.tolist()):
            preds[record.id] = LETTERS[best]
    return preds


def evaluate(run: str, bench: str, data: str | None, images: str | None, limit: int | None,
             mode: str = "likelihood", decoding: Decoding = Decoding()) -> dict:
    if mode not in MODES:
        raise UserError(f"--mode {mode!r} is unknown; use {' or '.join(MODES)}")
    if bench == "spatial":
        if mode != "likelihood":
            raise UserError(f"--mode {mode} scores {', '.join(BENCHMARKS)}; the spatial benchmark is scored by "
                            "likelihood")
        scores = evaluate_checkpoint(run)
        run_dir = Path(run) if (Path(run) / "config.yaml").exists() else Path(run).parent.parent
    else:
        if not data:
            raise UserError(f"--data is required for --bench {bench}: the benchmark file or folder")
        records = load_benchmark(bench, data, images=images)[: limit or None]
        trained = build.trained(run)
        run_dir, module, processor = trained.run_dir, trained.module, trained.processor
        asked = records_to_answer(bench, records)

        def scored(p) -> tuple[dict, dict]:
            if mode == "likelihood":
                preds = answer(module, p, asked)
                return preds, score_benchmark(bench, records, preds)
            # MMBench's circular copies too, each answered in its own words
            preds = answer_in_text(module.model, p, asked, decoding)
            return preds, score_benchmark(bench, records, preds, answers="text")

        by_m = at_each_m(module.model.projector, processor, scored)  # an elastic projector: every M of its set
        preds, scores = by_m[module.model.num_visual_tokens]
        if is_elastic(module.model.projector):
            scores = {**scores, "by_tokens": {str(m): s for m, (_, s) in by_m.items()}}
        write_json(run_dir / f"predictions_{bench}.json", preds)
    if read_results(run_dir) is None:
        raise UserError(f"{run_dir} has no results.json to write the scores into")
    scores = {**scores, "answered_by": mode}
    update_results(run_dir, ("metrics", "benchmarks", bench), scores)
    return scores


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    quiet_third_party()
    parser = ArgumentParser(prog="python -m projlab.evaluation.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder (runs/<sweep>/<arm>) or a checkpoint in one")
    parser.add_argument("--bench", required=True, help=f"spatial | {' | '.join(BENCHMARKS)}")
    parser.add_argument("--data", help="the benchmark's file (MMBench TSV, SEED JSON) or folder (MME)")
    parser.add_argument("--images", help="SEED-Bench's image folder (default: beside the JSON)")
    parser.add_argument("--limit", type=positive_int, help="score only the first N questions (a quick look)")
    parser.add_argument("--mode", default="likelihood", help="likelihood (option scores) | generate (text answers)")
    add_decoding_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.bench not in ("spatial", *BENCHMARKS):
        raise UserError(f"unknown benchmark {args.bench!r}; known: spatial, {', '.join(BENCHMARKS)}")
    scores = evaluate(args.run, args.bench, args.data, args.images, args.limit, args.mode, decoding_from(args))
    overall = scores.get("overall", scores.get("accuracy"))
    print(f"{args.bench}: overall {overall}")
    for cat, v in (scores.get("per_category") or {}).items():
        print(f"  {cat:<28} {v.get('accuracy')}  (n={v.get('n')})")


if __name__ == "__main__":
    main()
