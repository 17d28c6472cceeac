"""The bench: `python -m projlab.bench --quick` runs every section and writes a well-formed results.json and
results.md; bad flags are one-line errors. No timing assertions (the machine is shared)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from projlab.bench.__main__ import main
from projlab.bench.arms import PROJECTORS, arm_specs
from projlab.training.memory import peak_memory
from projlab.bench.timing import summary

REPO = Path(__file__).resolve().parents[1]


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _summary_ok(s: dict, n: int) -> bool:
    return s["n"] == n and 0 < s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]


@pytest.mark.slow
def test_quick_bench_writes_well_formed_results(tmp_path):
    out = tmp_path / "bench"
    env = {**os.environ, "PROJLAB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        # one thread: on a shared 2-core machine two OpenMP threads can slow small ops by orders of magnitude
        [sys.executable, "-m", "projlab.bench", "--quick", "--threads", "1", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["schema"] == "projlab.bench/1"
    assert res["settings"]["quick"] is True and res["settings"]["presets"] == ["tiny"]
    for key in ("cpu", "cores", "torch", "lightning", "transformers", "date"):
        assert res["environment"][key]

    # 1. every projector, every M (per-patch projectors at N), at the tiny preset
    arms = res["arms"]
    expected = {(s.projector, s.tokens or 256) for s in arm_specs(tuple(res["settings"]["tokens"]))}
    assert {(a["projector"], a["num_visual_tokens"]) for a in arms} == expected
    assert {a["projector"] for a in arms} == set(PROJECTORS)
    repeats = res["settings"]["repeats"]["tiny"]
    for a in arms:
        assert _summary_ok(a["step_time_s"], repeats) and _summary_ok(a["projector_time_s"], repeats)
        assert _summary_ok(a["ratio_to_linear"]["step"], repeats)
        assert _positive(a["samples_per_s"]) and _positive(a["visual_tokens_per_s"])
        assert a["visual_tokens_per_s"] == pytest.approx(a["samples_per_s"] * a["num_visual_tokens"])
        assert _positive(a["peak_memory_mb"]["step"]) and _positive(a["flops"]["step_forward"])
        assert 0 < a["params"]["projector"] <= a["params"]["trainable"] <= a["params"]["total"]
        assert a["mfu"] is None  # no peak FLOP/s on the CPU unless given
    linear = next(a for a in arms if a["projector"] == "linear")
    assert linear["ratio_to_linear"]["step"]["median"] == pytest.approx(1.0)

    # 2. Lightning against the plain loop: same number of timed steps on both sides
    o = res["overhead"]
    for loop in ("plain", "lightning"):
        assert o[loop]["step"]["n"] == o["blocks"] * o["timed_steps_per_block"]
        assert o[loop]["iteration"]["n"] == o["blocks"] * (o["timed_steps_per_block"] - 1)
        assert _positive(o[loop]["step"]["median"])
    assert o["ratio"]["step"] == pytest.approx(o["lightning"]["step"]["median"] / o["plain"]["step"]["median"])
    assert isinstance(o["within_target"], bool)

    # 3. data pipeline, with and without the feature cache
    (p,) = res["pipeline"]
    assert _positive(p["cached"]["samples_per_s"]) and _positive(p["uncached"]["samples_per_s"])
    assert p["reference"]["arm"] in {a["label"] for a in arms}
    assert p["reference"]["ratio_cached"] == pytest.approx(
        p["cached"]["samples_per_s"] / p["reference"]["step_samples_per_s"])

    # 4. paper configuration: counts for all, time for the ones the quick run times
    paper = res["paper"]
    assert {(q["projector"], q["grid"]) for q in paper} == {(n, g) for n in PROJECTORS for g in ("16x16", "24x24")}
    resampler = next(q for q in paper if q["projector"] == "resampler" and q["grid"] == "16x16")
    assert 100e6 < resampler["params"] < 110e6 and resampler["num_visual_tokens"] == 144
    assert next(q for q in paper if q["projector"] == "mlp" and q["grid"] == "24x24")["num_visual_tokens"] == 576
    assert all(_positive(q["time_s"]["median"]) for q in paper if q["projector"] in res["settings"]["paper_timed"])

    # 5. the recipe arm's step profiled: its buckets are its whole profiled time, matmuls among them
    (prof,) = res["profile"]
    assert prof["num_visual_tokens"] == 16 and prof["projector"] in PROJECTORS and prof["steps"] == 2
    shares = {k: b["share"] for k, b in prof["buckets"].items()}
    assert sum(shares.values()) == pytest.approx(1.0) and min(shares.values()) >= 0
    assert {"matmul", "Python between ops", "optimiser and clipping"} <= set(shares)
    assert 0 < prof["self_time_per_step_s"] <= 1.05 * prof["profiled_step_s"]  # one thread's own times
    assert _positive(prof["matmul"]["gflop_per_step"]) and _positive(prof["matmul"]["achieved_gflops"])

    md = (out / "results.md").read_text()
    assert md.startswith("# projlab bench")
    for needle in ("torch 2", "lightning", "transformers", "| linear M=N |", "Lightning / plain",
                   "## 3. Data pipeline", "| resampler | 24x24 | 144 |", "## 5. Where the recipe arm's step",
                   "| matmul | "):
        assert needle in md
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_profile_buckets_name_what_an_op_is():
    from projlab.bench.profile import OTHER, STEP, bucket

    assert {op: bucket(op) for op in (
        "aten::mm", "aten::addmm", "aten::mm_out", "aten::convolution_backward", "aten::conv2d",
        "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_foreach_norm", "Optimizer.step#AdamW.step",
        "autograd::engine::evaluate_function: MmBackward0", "aten::_to_copy", "aten::native_layer_norm_backward",
        "aten::silu", STEP)} == {
        "aten::mm": "matmul", "aten::addmm": "matmul", "aten::mm_out": OTHER,
        "aten::convolution_backward": "convolution", "aten::conv2d": "convolution",
        "aten::_scaled_dot_product_flash_attention_for_cpu": "attention (SDPA, softmax)",
        "aten::_foreach_norm": "optimiser and clipping", "Optimizer.step#AdamW.step": "optimiser and clipping",
        "autograd::engine::evaluate_function: MmBackward0": "autograd engine", "aten::_to_copy": "casts and copies",
        "aten::native_layer_norm_backward": "norms", "aten::silu": OTHER, STEP: "Python between ops"}


def test_the_arms_come_from_the_registry():
    """The bench's projectors, their Ms and their labels are read from each projector class (controls and
    those running another's modules left out, the token rule deciding M), as the lists written out before gave."""
    from projlab.bench.arms import HONEYBEE
    from projlab.projectors.registry import projector_class, table_order

    assert PROJECTORS == ("linear", "mlp", "resampler", "qformer", "c_abstractor", "d_abstractor", "avgpool",
                          "ldpv2", "pixel_shuffle", "tokenpacker", "perceiver")
    assert HONEYBEE == PROJECTORS[:6]
    left_out = [n for n in table_order() if n not in PROJECTORS]
    assert left_out == ["c_abstractor_elastic", "blind", "shuffle"]
    assert projector_class("c_abstractor_elastic").network_of == "c_abstractor"

    def labels(tokens, grid):
        return [s.label for s in arm_specs(tokens, ("linear", "c_abstractor", "pixel_shuffle", "perceiver"), grid)]

    assert labels((64, 144, 256), (16, 16)) == [
        "linear M=N", "c_abstractor M=64", "c_abstractor M=144", "c_abstractor M=256", "pixel_shuffle M=64",
        "pixel_shuffle M=256", "perceiver M=64", "perceiver M=144", "perceiver M=256"]
    assert labels((144,), (16, 16)) == ["linear M=N", "c_abstractor M=144", "pixel_shuffle M=N/4", "perceiver M=144"]
    assert labels((144,), (24, 24)) == ["linear M=N", "c_abstractor M=144", "pixel_shuffle M=144", "perceiver M=144"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--repeats", "0"], "--repeats"),
        (["--presets", "huge"], "--presets"),
        (["--precision", "fp8"], "--precision"),
        (["--peak-tflops", "-1"], "--peak-tflops"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_flags_are_one_line_errors(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err


def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cuda"])
    assert exit_info.value.code == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_peak_memory_counts_parameters_gradients_state_and_activations():
    lin = torch.nn.Linear(256, 1024)
    opt = torch.optim.AdamW(lin.parameters())
    x = torch.randn(64, 256)
    with peak_memory(torch.device("cpu"), lin, opt) as mem:
        lin(x).sum().backward()
        opt.step()
    params = sum(p.numel() for p in lin.parameters()) * 4
    # at the optimiser step: parameters + gradients + two AdamW moments, plus the update's temporaries
    # (a few tensors of the largest parameter's size) or the activations
    assert 4 * params <= mem["mb"] * 2**20 < 7 * params + 64 * (1024 + 256) * 4


def test_the_mid_preset_tokenizes_every_prompt_word():
    from projlab.bench.presets import mid_tokenizer
    from projlab.data import spatial
    from projlab.data.conversation import IMAGE_TOKEN
    from projlab.data.prompt import TextProcessor

    tok = mid_tokenizer()
    processor = TextProcessor(tok, 16, tok.convert_tokens_to_ids(IMAGE_TOKEN), "plain")
    for item in spatial.generate("mid", 2, seed=0):
        ids = processor.example(item.question, item.answer_text)["input_ids"]
        assert tok.unk_token_id not in ids and ids.count(processor.image_token_id) == 16
    assert all(tok.convert_tokens_to_ids(w) != tok.unk_token_id for w in ("question", ":", "answer"))


def test_summary_is_median_and_quartiles():
    s = summary([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3.0, 2.0, 4.0, 1.0, 5.0, 5)
