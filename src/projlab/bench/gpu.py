"""The paper configuration's training step on one GPU: `make bench-gpu` / `python -m projlab.bench.gpu`.

    python -m projlab.bench.gpu [--layers 32] [--steps 10] [--warmup 3] [--batch-size 4] [--seq-len 2048]
                                [--peak-tflops T] [--out bench/] [--workdir DIR] [HYDRA_OVERRIDE ...]

Honeybee's stage 2 (C-Abstractor, M = 144; projector and LLM trained) on CLIP ViT-L/14-336 and Vicuna-7B,
built from their configs with random weights (`models.paper_backbones`: no download), loaded by the
function a run loads them with (`train.build_backbones`), sharded by the project's FSDP2 code
(`training.strategy.apply_fsdp2`: `fully_shard` per decoder layer) in its bf16 policy, and stepped by the
bench's plain step (bf16 autocast, clipping, AdamW, schedule) on a fixed batch of cached-feature-shaped
inputs, as a run with the feature cache trains. Reported: step time, tokens/s, peak GPU memory, and MFU
from the project's one FLOP count (`projectors.accounting`) against the card's dense bf16 peak
(`bench.cards`, or --peak-tflops). Written to <out>/gpu.json and <out>/gpu.md. `--layers` cuts the LLM
where memory is short; trailing Hydra overrides change the recipe (llm.gradient_checkpointing=false...).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is built here: never wait on a hub

import torch  # noqa: E402

from projlab.cli import ArgumentParser, positive_int  # noqa: E402
from projlab.errors import UserError, exit_on_user_error  # noqa: E402
from projlab.markdown import table  # noqa: E402

# stage 2 from a random projector rather than a stage-1 checkpoint: a step costs the same
STAGE = ["experiment=paper_stage2", "stage.requires_init=false", "vision=clip_l14_336", "projector=c_abstractor",
         "projector.num_visual_tokens=144", "trainer=fsdp", "trainer.accelerator=gpu"]


def synthetic_batch(model, batch_size: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch (on the CPU) of `batch_size` sequences of `seq_len` tokens: BOS, the M image tokens,
    then random text ids (the loss on the text), with features (B, N, C_vision) as the cache holds them."""
    g = torch.Generator().manual_seed(seed)
    tok, m = model.llm.tokenizer, model.num_visual_tokens
    if seq_len < m + 2:
        raise UserError(f"--seq-len {seq_len} leaves no text after BOS and the {m} image tokens; give at least {m + 2}")
    low = max(tok.all_special_ids) + 1
    text = torch.randint(low, model.llm.model.config.vocab_size, (batch_size, seq_len - 1 - m), generator=g)
    prompt = torch.tensor([tok.bos_token_id] + [model.llm.image_token_id] * m).expand(batch_size, -1)
    input_ids = torch.cat([prompt, text], 1)
    labels = input_ids.masked_fill(torch.arange(seq_len) < 1 + m, -100)
    n = model.projector.num_patches
    features = torch.randn(batch_size, n, model.vision.hidden_size, generator=g).to(model.vision.feature_dtype)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels,
            "features": features}


def step_forward_flops(model, batch: dict[str, torch.Tensor], precision: str) -> int:
    """The forward FLOPs of one step on `batch` (projector and LLM, the LM head and attention included), as
    `projectors.accounting.forward_flops` counts them for results.json and `make bench`."""
    from projlab.bench.loop import autocast
    from projlab.projectors.accounting import forward_flops

    device = batch["input_ids"].device
    with torch.no_grad(), autocast(device, precision):
        return forward_flops(lambda: model(batch["input_ids"], batch["attention_mask"],
                                           model.encode_images(features=batch["features"]), labels=batch["labels"]))


def summarise(forward_flops: int, step_s: float, tokens: int, peak_tflops: float) -> dict[str, float]:
    """Throughput and MFU of a step of `tokens` tokens taking `step_s` seconds."""
    from projlab.projectors.accounting import mfu, training_flops

    return {"step_time_s": step_s, "tokens_per_s": tokens / step_s, "step_flops": training_flops(forward_flops),
            "achieved_tflops": training_flops(forward_flops) / step_s / 1e12,
            "mfu": mfu(forward_flops, step_s, peak_tflops)}


def peak_tflops_for(device_name: str, given: float | None) -> float:
    from projlab.bench.cards import BF16_DENSE_TFLOPS, card_peak_tflops

    peak = given or card_peak_tflops(device_name)
    if peak is None:
        raise UserError(f"no bf16 peak known for {device_name!r} (known: {', '.join(BF16_DENSE_TFLOPS)}); "
                        "give --peak-tflops")
    return peak


def parse(argv: list[str]):
    parser = ArgumentParser(prog="python -m projlab.bench.gpu", description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=positive_int, help="the LLM's decoder layers (default: Vicuna-7B's 32)")
    parser.add_argument("--steps", type=positive_int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="sequences per step (default 4)")
    parser.add_argument("--seq-len", type=positive_int, default=2048, help="tokens per sequence, the 144 visual "
                        "ones included (default 2048, LLaVA-1.5's cap)")
    parser.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak (default: from its name)")
    parser.add_argument("--out", default="bench", help="output folder (default bench/)")
    parser.add_argument("--workdir", help="where the random-weight folders are written (default: a temporary "
                        "folder, removed at the end)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the recipe")
    return parser.parse_args(argv)


def _backbones(folder: Path, layers: int | None) -> tuple[str, str]:
    from projlab.data.prompt import template_words
    from projlab.models.paper_backbones import save_random_llm, save_random_tower
    from projlab.models.presets import build_tokenizer, tiny_words

    vision, llm = folder / "vision", folder / f"llm-{layers or 'all'}-layers"  # a reused --workdir: one per cut
    if not (vision / "config.json").exists():
        save_random_tower(vision)
    if not (llm / "config.json").exists():
        save_random_llm(llm, build_tokenizer(tiny_words() + template_words("vicuna")), layers=layers)
    return str(vision), str(llm)


def bench(args, folder: Path, device: torch.device) -> dict:
    """Build, shard and time the step on `device` (a GPU; the CPU, with gloo, runs the same code for a check)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from projlab import build
    from projlab.bench.loop import plain_step, set_train_mode, to_device, trainable
    from projlab.bench.report import environment
    from projlab.bench.timing import Clock, summary
    from projlab.config import load_config
    from projlab.projectors.accounting import count_parameters
    from projlab.training.precision import resolve_precision
    from projlab.training.memory import peak_rss_mb
    from projlab.training.strategy import apply_fsdp2

    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = peak_tflops_for(name, args.peak_tflops)
    print(f"building the random-weight backbones in {folder} (LLM: {args.layers or 32} layers)", flush=True)
    vision, llm = _backbones(folder, args.layers)
    cfg = load_config([*STAGE, f"vision.name_or_path={vision}", f"llm.name_or_path={llm}",
                       f"stage.batch_size={args.batch_size}", *args.overrides])
    precision = resolve_precision(cfg.trainer.precision, "gpu" if cuda else "cpu")
    model = build.model(cfg)
    module = build.module(cfg, model).to(device)
    stage = module.stage
    batch = to_device(synthetic_batch(model, args.batch_size, args.seq_len), device)
    fwd = step_forward_flops(model, batch, precision)  # counted before sharding: the model as a run builds it

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1)
    try:
        apply_fsdp2(module, init_device_mesh(device.type, (1,), mesh_dim_names=("data_parallel",)),
                    cfg.trainer.mixed_precision, bool(cfg.trainer.activation_checkpointing))
        opt = module.configure_optimizers()
        optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
        params = trainable(module)
        set_train_mode(module)
        clock = Clock(device)
        times = []
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        for i in range(args.warmup + args.steps):
            t0 = clock()
            loss = plain_step(module, optimizer, scheduler, params, batch, device, precision)
            if i >= args.warmup:
                times.append(clock() - t0)
    finally:
        dist.destroy_process_group()
    step = summary(times)
    return {
        "schema": "projlab.bench.gpu/1",
        "environment": environment(device),
        "device_name": name,
        "peak_tflops_bf16": peak,
        "config": {"vision": "CLIP ViT-L/14-336 (random weights)", "llm": "Vicuna-7B v1.5 (random weights)",
                   "llm_layers": model.llm.model.config.num_hidden_layers, "projector": "c_abstractor",
                   "num_visual_tokens": model.num_visual_tokens, "stage": cfg.stage.name,
                   "trainable": list(stage.trainable), "precision": precision,
                   "fsdp_mixed_precision": cfg.trainer.mixed_precision,
                   "gradient_checkpointing": bool(cfg.llm.gradient_checkpointing),
                   "batch_size": args.batch_size, "seq_len": args.seq_len, "warmup": args.warmup,
                   "overrides": list(args.overrides)},
        "params": {"total": count_parameters(module), "trainable": count_parameters(module, trainable_only=True)},
        "forward_flops": fwd,
        **summarise(fwd, step["median"], args.batch_size * args.seq_len, peak),
        "step_time_s_summary": step,
        # the GPU's allocator peak; on the CPU, the process's
        "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**20 if cuda else peak_rss_mb()) / 2**10,
        "last_loss": float(loss),
    }


def markdown(r: dict) -> str:
    c = r["config"]
    return "\n".join([
        "# The paper configuration's training step on one GPU", "",
        f"{r['device_name']}; {c['llm']} cut to {c['llm_layers']} layers, {c['vision']}, {c['projector']} "
        f"M = {c['num_visual_tokens']}; stage {c['stage']} (trains {', '.join(c['trainable'])}), FSDP2 "
        f"({c['fsdp_mixed_precision']} policy), {c['precision']}, gradient checkpointing "
        f"{'on' if c['gradient_checkpointing'] else 'off'}; batch {c['batch_size']} x {c['seq_len']} tokens.", "",
        *table(["step (median)", "tokens/s", "achieved TFLOP/s", "MFU", "peak memory"],
               [[f"{r['step_time_s']:.3f} s", f"{r['tokens_per_s']:,.0f}", f"{r['achieved_tflops']:.0f}",
                 f"{r['mfu']:.1%}", f"{r['peak_memory_gib']:.1f} GiB"]]), "",
        f"MFU: 3 x the step's forward FLOPs ({r['forward_flops'] / 1e12:.1f} TFLOP, `projectors.accounting`) per "
        f"second, over the card's dense bf16 peak of {r['peak_tflops_bf16']:g} TFLOP/s. Steps timed: "
        f"{r['step_time_s_summary']['n']} after {c['warmup']} of warm-up.", "",
    ])


@exit_on_user_error
def main(argv: list[str] | None = None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    if not torch.cuda.is_available():
        raise UserError("make bench-gpu needs a CUDA GPU: torch sees none on this machine")
    if args.warmup < 0:
        raise UserError(f"--warmup {args.warmup} is not allowed; give 0 or more")
    from projlab.console import quiet_third_party
    from projlab.io import atomic_write, write_json

    quiet_third_party()
    own = args.workdir is None
    folder = Path(tempfile.mkdtemp(prefix="paper-backbones-") if own else args.workdir)
    try:
        result = bench(args, folder, torch.device("cuda", 0))
    except torch.cuda.OutOfMemoryError:
        raise UserError(f"out of GPU memory at batch {args.batch_size} x {args.seq_len} tokens with "
                        f"{args.layers or 32} LLM layers; give fewer --layers or a smaller --batch-size") from None
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
    out = Path(args.out)
    write_json(out / "gpu.json", result)
    atomic_write(out / "gpu.md", lambda tmp: tmp.write_text(markdown(result)))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
