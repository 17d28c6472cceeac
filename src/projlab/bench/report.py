"""The bench's record of where it ran (machine, versions, date) and its Markdown rendering."""
from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import torch

from projlab.markdown import table


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment(device: torch.device) -> dict:
    import lightning
    import transformers

    from projlab.training.precision import cpu_flags, native_bf16

    env = {
        "cpu": cpu_model(),
        # what decides the precisions' speed: figures from machines that differ here are not comparable
        "cpu_flags": [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
                      if f in cpu_flags()],
        "native_bf16": native_bf16(device.type),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")
                    if k in os.environ},
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "transformers": transformers.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        env["load_average_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    return env


# ---- formatting ---------------------------------------------------------------------------------------
def _ms(s: dict | None) -> str:
    if not s:
        return "-"
    return f"{1e3 * s['median']:.1f} ({1e3 * s['q1']:.1f}-{1e3 * s['q3']:.1f})"


def _x(s: dict) -> str:
    return f"{s['median']:.2f} ({s['q1']:.2f}-{s['q3']:.2f})"


def _n(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _arms(records: list[dict], preset: str, presets_doc: dict) -> list[str]:
    rs = [r for r in records if r["preset"] == preset]
    if not rs:
        return []
    b = rs[0]["batch_size"]
    mfu = any(r["mfu"] is not None for r in rs)
    header = ["arm", "M", "seq", "projector params", "projector fwd+bwd ms", "projector / linear", "step ms",
              "step / linear", "samples/s", "visual tokens/s", "peak MiB (proj / step)", "step fwd GFLOPs",
              "achieved GFLOP/s" + (" (MFU)" if mfu else ""), "GFLOP/s projector / LLM / step (% of peak)"]
    rows = []
    for r in rs:
        achieved = _n(1e3 * r["achieved_tflops"]) + (f" ({100 * r['mfu']:.1f}%)" if r["mfu"] is not None else "")
        rows.append([
            r["label"], str(r["num_visual_tokens"]), str(r["seq_len"]), f"{r['params']['projector']:,}",
            _ms(r["projector_time_s"]), _x(r["ratio_to_linear"]["projector"]), _ms(r["step_time_s"]),
            _x(r["ratio_to_linear"]["step"]), _n(r["samples_per_s"]), _n(r["visual_tokens_per_s"]),
            f"{r['peak_memory_mb']['projector']:.0f} / {r['peak_memory_mb']['step']:.0f}",
            f"{r['flops']['step_forward'] / 1e9:.2f}", achieved, _parts(r),
        ])
    title = f"### Preset `{preset}`: {presets_doc.get(preset, '')}; batch {b}"
    return [title, ""] + table(header, rows, "l" + "r" * (len(header) - 1)) + [""]


def _roofline(r: dict) -> list[str]:
    rows = []
    for precision, p in r.items():
        for shape, g in p["gflops"].items():
            rows.append([precision, p["dtype"], shape, _n(g), "peak" if g == p["peak_gflops"] else ""])
    return ["torch's own matmul, median of repeated products; the peak of a precision is its best shape.", ""] + table(
        ["precision", "dtype", "product", "GFLOP/s", ""], rows, "lllrl") + [""]


def _parts(r: dict) -> str:
    """Achieved GFLOP/s (fraction of the peak) of projector / LLM / step."""
    roof = r.get("roofline") or {}
    achieved, frac = roof.get("achieved_gflops") or {}, roof.get("fraction_of_peak")
    return " / ".join(
        _n(achieved[k]) + (f" ({100 * frac[k]:.0f}%)" if frac else "") for k in ("projector", "llm", "step")
        if k in achieved
    ) or "-"


def _overhead(o: dict) -> list[str]:
    rows = [[name, _ms(o[name]["step"]), _ms(o[name]["iteration"])] for name in ("plain", "lightning")]
    rows.append(["Lightning / plain (medians)", f"{o['ratio']['step']:.3f}", f"{o['ratio']['iteration']:.3f}"])
    verdict = "within" if o["within_target"] else "ABOVE"
    return [
        f"Preset `{o['preset']}`, arm {o['arm']}, batch {o['batch_size']}: {o['blocks']} blocks per loop, "
        f"alternating (ABBA), of {o['timed_steps_per_block']} timed steps after {o['warmup_per_block']} warm-up steps. "
        f"Target: ratio <= {o['target_ratio']:.2f}; measured: {verdict} target.",
        "",
    ] + table(["loop", "step ms", "iteration ms (incl. next batch)"], rows, "lrr") + [""]


def _pipeline(ps: list[dict]) -> list[str]:
    header = ["preset", "batch", "loader samples/s, cached features", "loader samples/s, rendering + preprocessing",
              "step samples/s (arm)", "ratio cached", "ratio uncached"]
    rows = []
    for p in ps:
        for key in ("reference", "fastest"):
            a = p[key]
            rows.append([
                p["preset"], str(p["batch_size"]), _n(p["cached"]["samples_per_s"]),
                _n(p["uncached"]["samples_per_s"]), f"{_n(a['step_samples_per_s'])} ({a['arm']}, {key})",
                f"{a['ratio_cached']:.1f}", f"{a['ratio_uncached']:.1f}",
            ])
    return ["Ratio = loader samples/s / step samples/s; above 1: the loader is not the bottleneck "
            f"(num_workers={ps[0]['num_workers'] if ps else 0}, as the recipe).", ""] + table(
        header, rows, "l" + "r" * (len(header) - 1)) + [""]


def _paper(ps: list[dict]) -> list[str]:
    b = ps[0]["batch_size"] if ps else 1
    rows = [[
        p["projector"], p["grid"], str(p["num_visual_tokens"]), f"{p['params']:,}",
        f"{p['forward_flops_per_sample'] / 1e9:.2f}", _ms(p["time_s"]) if p["time_s"] else "not timed",
    ] for p in ps]
    return ["Vision width 1024 -> LLM width 4096 (ViT-L/14 -> Vicuna-7B). FLOPs: torch's FlopCounterMode "
            "(matmuls, convolutions, attention; a multiply-add is 2; element-wise work and grid_sample not "
            "counted).", ""] + table(
        ["projector", "grid", "M", "parameters", "forward GFLOPs / sample", f"fwd+bwd ms, batch {b}"], rows,
        "llrrrr") + [""]


def _profile(ps: list[dict], precision: str) -> list[str]:
    """Per bucket, ms per step (share) of each profiled arm; the matmuls' rate; each arm's dearest ops."""
    labels = [f"{p['label']} (batch {p['batch_size']}, seq {p['seq_len']})" for p in ps]
    buckets = list(dict.fromkeys(b for p in ps for b in p["buckets"]))
    rows = [[b] + [f"{1e3 * p['buckets'][b]['s_per_step']:.1f} ({100 * p['buckets'][b]['share']:.0f}%)"
                   if b in p["buckets"] else "-" for p in ps] for b in buckets]
    rows.append(["profiled step"] + [f"{1e3 * p['profiled_step_s']:.1f}" for p in ps])
    lines = [f"torch.profiler over {ps[0]['steps']} steps after {ps[0]['warmup_steps']} unprofiled ones, "
             f"precision {precision}: each "
             "op's own time, sorted by what it is, ms per step (share of the profiled time). Matmul FLOPs are the "
             "profiler's count of every forward and backward product.", ""]
    lines += table(["bucket"] + labels, rows, "l" + "r" * len(ps)) + [""]
    for p in ps:
        mm = p["matmul"]
        frac = f", {100 * mm['fraction_of_peak']:.0f}% of the peak" if mm.get("fraction_of_peak") else ""
        rate = f"{_n(mm['achieved_gflops'])} GFLOP/s{frac}" if mm["achieved_gflops"] else "no matmul time"
        lines += [f"- {p['label']}: matmuls {mm['gflop_per_step']:.2f} GFLOP per step at {rate}; dearest ops: "
                  + ", ".join(f"{o['op']} {o['ms_per_step']:.1f} ms ({o['calls_per_step']:g} calls)"
                              for o in p["top_ops"][:6])]
    return lines + [""]


def _load_warning(env: dict) -> list[str]:
    """A busy machine distorts CPU timings (with 2 OpenMP threads on 2 shared cores, by orders of magnitude)."""
    loads = [env.get("load_average_at_start", [0])[0], env.get("load_average_at_end", [0])[0]]
    if env["device"].startswith("cuda") or max(loads) < 0.5 * (env["cores"] or 1):
        return []
    return [f"- **warning**: the machine was busy (1-min load average {loads[0]:.1f} at start, {loads[1]:.1f} at "
            f"end, on {env['cores']} cores): other processes distort these timings; compare ratios within "
            "this run only, and rerun on an idle machine for absolute numbers"]


def markdown(results: dict) -> str:
    env, s = results["environment"], results["settings"]
    device = env["device"] + (f" ({env['gpu']})" if env.get("gpu") else "")
    per_preset = ", ".join(f"{p}: batch {s['batch_size'][p]}, {s['repeats'][p]} repeats" for p in s["presets"])
    lines = [
        "# projlab bench: what each projector costs, and what the framework costs",
        "",
        f"- machine: {env['cpu']}, {env['cores']} cores (torch threads {env['torch_threads']}"
        + "".join(f", {k}={v}" for k, v in env.get("omp_env", {}).items()) + f"); device {device}",
        f"- CPU flags that decide the precisions' speed: {', '.join(env.get('cpu_flags') or []) or 'none of note'}; "
        f"native bf16: {'yes' if env.get('native_bf16') else 'no'} (figures from machines that differ here, or "
        "in CPU model, are not comparable)",
        f"- versions: torch {env['torch']}, lightning {env['lightning']}, transformers {env['transformers']}, "
        f"python {env['python']}",
        f"- date: {env['date']}; wall time {results['wall_time_s']:.0f} s"
        + (f"; load average at start {env['load_average_at_start'][0]:.2f}" if "load_average_at_start" in env else ""),
        f"- settings: {'quick' if s['quick'] else 'full'}; precision {s['precision']}; {per_preset} per arm, "
        "interleaved round-robin after one warm-up round; times are median (interquartile range) in ms; ratios "
        "to linear are taken per round, then summarised",
        "- peak memory: " + ("torch.cuda.max_memory_allocated" if env["device"].startswith("cuda") else
                             "live tensor storage followed by a dispatch mode (parameters, gradients, optimiser "
                             "state, activations) on the untimed warm-up step"),
    ]
    lines += _load_warning(env)
    if results.get("roofline"):
        lines += ["", "## 0. The roofline: this machine's matmul peak", ""] + _roofline(results["roofline"])
    lines += [
        "",
        "## 1. Projectors inside the model: projector alone and the full training step",
        "",
        "Full step = projector + LLM trainable, frozen tower's features given (as the tiny recipe with its "
        "feature cache): forward, backward, gradient clipping, AdamW, LR schedule. Achieved FLOP/s = "
        "3 x forward FLOPs / time, for the projector alone (fwd+bwd), the LLM alone (fwd+bwd, its visual "
        "tokens given) and the step; FLOPs from `projlab.training.efficiency`, as results.json counts them "
        "(FlopCounterMode: every matmul, the LM head included, and attention by SDPA's formula; element-wise "
        "work uncounted); % of the peak of the precision measured in section 0.",
        "",
    ]
    for preset in s["presets"]:
        lines += _arms(results["arms"], preset, results.get("presets", {}))
    if results.get("overhead"):
        lines += ["## 2. Framework overhead: Lightning against a plain PyTorch loop", ""]
        lines += _overhead(results["overhead"])
    if results.get("pipeline"):
        lines += ["## 3. Data pipeline against the training step", ""] + _pipeline(results["pipeline"])
    if results.get("paper"):
        lines += ["## 4. The paper configuration's projectors", ""] + _paper(results["paper"])
    if results.get("profile"):
        lines += ["## 5. Where the recipe arm's step spends its time", ""] + _profile(results["profile"], s["precision"])
    return "\n".join(lines).rstrip() + "\n"
