"""`python -m projlab.bench [--quick] [--out bench/] [--presets tiny,mid] [--repeats R] [--batch-size B]
[--device cpu|cuda] [--precision 32-true|bf16-mixed] [--peak-tflops T]`

Runs the sections in one process and writes <out>/results.json (atomic) and <out>/results.md:
0. the roofline: this machine's matmul peak per precision (square and the tiny model's own shapes);
1. per preset, every projector arm (every registered projector but the controls and those running another's
   modules, `bench.arms.PROJECTORS`; M in 64/144/256: N for the per-patch ones, the Ms the grid's blocks give
   for the block ones): projector forward+backward alone and the full training step, interleaved, with ratios
   to linear;
2. Lightning's training step against a plain PyTorch loop on the recipe's arm (the smallest preset given);
3. the DataModule's loader alone (cached features, and rendering + preprocessing) against the step;
4. the paper configuration's projectors (1024 -> 4096, grids 16x16 and 24x24);
5. where the recipe arm's step spends its time (torch.profiler at M = 16 and 144, the recipe's batch).
"""
from __future__ import annotations

import os
import time

_T0 = time.perf_counter()
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bench builds everything locally: never wait on a hub

import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from projlab.bench.arms import ArmSpec, arm_specs, bench_arms  # noqa: E402
from projlab.bench.overhead import bench_overhead  # noqa: E402
from projlab.bench.paper import bench_paper  # noqa: E402
from projlab.bench.pipeline import against_steps, loader_throughput  # noqa: E402
from projlab.bench.presets import load_backbones  # noqa: E402
from projlab.bench.profile import profile_recipe  # noqa: E402
from projlab.bench.report import environment, markdown  # noqa: E402
from projlab.bench.roofline import llm_shapes, peaks  # noqa: E402
from projlab.bench.settings import PRESET_DOC, Settings, parse  # noqa: E402
from projlab.console import quiet_third_party  # noqa: E402
from projlab.errors import exit_on_user_error  # noqa: E402
from projlab.io import atomic_write, write_json  # noqa: E402

SCHEMA = "projlab.bench/1"


def _say(msg: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:6.1f} s] {msg}", flush=True)


def run(s: Settings, out: Path) -> dict:
    device = torch.device(s.device)
    if s.threads:
        torch.set_num_threads(s.threads)
    results: dict = {
        "schema": SCHEMA,
        "environment": environment(device),
        "settings": s.as_dict(),
        "presets": {p: PRESET_DOC[p] for p in s.presets},
        "roofline": None,
        "arms": [],
        "overhead": None,
        "pipeline": [],
        "paper": [],
        "profile": [],
    }
    for preset in s.presets:
        bb = load_backbones(preset)
        specs = arm_specs(s.tokens, grid=bb.vision.grid)
        recipe = ArmSpec(bb.cfg.projector.name, bb.cfg.projector.get("num_visual_tokens"), tuple(bb.vision.grid))
        batch, cache = s.batch_size[preset], bb.cfg.paths.cache_dir
        if results["roofline"] is None:  # at the recipe's own LLM shape: batch x the M=144 sequence
            c = bb.llm.model.config
            tokens = bb.cfg.stage.batch_size * (144 + 17)
            _say(f"roofline: matmul peak, precisions {', '.join(s.peak_precisions)}")
            results["roofline"] = peaks(device, llm_shapes(tokens, c.hidden_size, c.intermediate_size),
                                        s.peak_precisions, repeats=3 if s.quick else 5)
        peak = results["roofline"][s.precision]["peak_gflops"]
        _say(f"{preset}: data pipeline alone")  # first: fills the feature cache while the tower is on the CPU
        loader = loader_throughput(bb, batch, s.pipeline_batches, recipe.tokens or 0, cache, s.per_category)
        _say(f"{preset}: {len(specs)} arms, batch {batch}, {s.repeats[preset]} rounds")
        arms = bench_arms(bb, specs, batch, s.repeats[preset], device, s.precision, s.peak_tflops,
                          peak_gflops=peak)
        results["arms"] += arms
        results["pipeline"].append(against_steps(loader, arms, recipe.label))
        if results["overhead"] is None:  # the first (smallest) preset: where a fixed cost weighs most
            ob = s.overhead_batch or bb.cfg.stage.batch_size
            _say(f"{preset}: Lightning against the plain loop ({recipe.label}, batch {ob})")
            results["overhead"] = bench_overhead(
                bb, recipe, ob, s.overhead_steps, s.overhead_warmup, s.overhead_blocks, device, s.precision,
                cache, s.per_category,
            )
            _say(f"{preset}: profile of {recipe.projector} at M = {', '.join(map(str, s.profile_tokens))}, batch {ob}")
            results["profile"] = profile_recipe(bb, s.profile_tokens, ob, s.profile_steps, device, s.precision, peak)
        del bb
    _say(f"paper configuration's projectors (timed: {', '.join(s.paper_timed)})")
    results["paper"] = bench_paper(s.paper_batch, s.paper_repeats, s.paper_timed, device, s.precision)
    results["wall_time_s"] = time.perf_counter() - _T0
    results["environment"]["load_average_at_end"] = list(os.getloadavg())
    write_json(out / "results.json", results)
    atomic_write(out / "results.md", lambda tmp: tmp.write_text(markdown(results)))
    return results


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    settings, out = parse(sys.argv[1:] if argv is None else argv)
    quiet_third_party()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    results = run(settings, Path(out))
    _say(f"wrote {Path(out) / 'results.json'} and {Path(out) / 'results.md'} in {results['wall_time_s']:.0f} s")


if __name__ == "__main__":
    main()
