"""Projectors as the reference trains them, not only as functions: the init scheme, the D-Abstractor's
reference points and dropout sites, the resampler's LayerNorm eps and float32 norms, the MLP activation.

Init statistics are checked at the paper configuration (1024 -> 4096, 16x16 grid, M = 144; 64 for the block
projectors), built for real on the CPU (about 450M parameters in all, one projector at a time)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from projlab.errors import UserError
from projlab.projectors import build_projector
from projlab.projectors.base import LayerNormFp32, PositionalEmbedding
from projlab.projectors.registry import projector_config

PAPER = dict(vision_dim=1024, llm_dim=4096, grid=(16, 16))
HONEYBEE = ["linear", "mlp", "c_abstractor", "d_abstractor", "resampler", "qformer"]
NEWER = ["avgpool", "ldpv2", "pixel_shuffle", "tokenpacker", "perceiver"]


def _build(name: str, **knobs) -> nn.Module:
    """At the paper's size with its dataclass's defaults (M = 144, a block projector's r = 2: M = 64)."""
    torch.manual_seed(0)
    return build_projector(name, knobs, **PAPER)


def _weighted(module: nn.Module):
    """(name, weight, bias) of every Linear, Conv2d and Embedding, and the packed q/k/v of attention."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            yield name, m.weight, getattr(m, "bias", None)
        elif isinstance(m, nn.MultiheadAttention):
            yield f"{name}.in_proj", m.in_proj_weight, m.in_proj_bias


@pytest.mark.parametrize("name", HONEYBEE + NEWER)
def test_reference_init_statistics_at_the_paper_configuration(name):
    # the perceiver's six layers are alike: one at the paper width holds every kind of module (and is 5x faster)
    proj = _build(name, **({"depth": 1} if name == "perceiver" else {}))
    kinds = 0
    for where, weight, bias in _weighted(proj):
        std = weight.detach().double().std().item()
        assert abs(std - 0.02) < 0.002, f"{name}.{where}: weight std {std:.4f}, expected 0.02 +- 10%"
        assert abs(weight.detach().double().mean().item()) < 0.002, f"{name}.{where}: weight mean not 0"
        if bias is not None:
            assert torch.count_nonzero(bias) == 0, f"{name}.{where}: bias not zero"
        kinds += 1
    assert kinds > 0
    for where, m in proj.named_modules():
        if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), f"{name}.{where}: LayerNorm not 1 / 0"
        if isinstance(m, PositionalEmbedding):  # trunc-normal std 0.02, never re-drawn
            assert abs(m.weight.std().item() - 0.02) < 0.002


def test_resampler_queries_start_at_zero_and_d_abstractor_queries_at_002():
    assert torch.count_nonzero(_build("resampler").queries) == 0
    d = _build("d_abstractor")
    assert abs(d.query_embed.weight.std().item() - 0.02) < 0.002


# One module per newer projector whose bias PyTorch draws at random (reference: zero).
BIASED = {
    "avgpool": "readout.0", "ldpv2": "peg", "pixel_shuffle": "readout.0", "tokenpacker": "k_proj",
    "perceiver": "readout.0",
}


@pytest.mark.parametrize("name", NEWER)
def test_newer_projectors_take_either_init_scheme(name):
    knobs = {"depth": 1} if name == "perceiver" else {}
    small = dict(vision_dim=32, llm_dim=48, grid=(4, 4))
    torch.manual_seed(0)
    ref = build_projector(name, {**knobs, "num_visual_tokens": 4}, **small)
    torch.manual_seed(0)
    own = build_projector(name, {**knobs, "num_visual_tokens": 4, "init": "pytorch"}, **small)
    assert torch.count_nonzero(ref.get_submodule(BIASED[name]).bias) == 0
    assert torch.count_nonzero(own.get_submodule(BIASED[name]).bias) > 0
    if name == "perceiver":  # latents are the projector's own: N(0, 1) under either scheme (Flamingo's randn)
        assert torch.equal(ref.latents, own.latents)


def test_pytorch_init_keeps_each_modules_own_start():
    """`init: pytorch` is the other option: PyTorch's uniform init (the depthwise 3x3 conv at std ~0.19
    with fan-in 9), non-zero biases, the D-Abstractor's query embedding N(0, 1) and Deformable DETR's
    offset ring."""
    c = _build("c_abstractor", init="pytorch")
    depthwise = c.stage1[0].conv2[0].weight
    assert depthwise.std().item() == pytest.approx(1 / 3 / 3**0.5, rel=0.1)
    assert torch.count_nonzero(c.readout[0].bias) > 0
    d = _build("d_abstractor", init="pytorch")
    assert d.query_embed.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert torch.count_nonzero(d.layers[0].cross_attn.sampling_offsets.bias) > 0
    assert torch.count_nonzero(_build("d_abstractor").layers[0].cross_attn.sampling_offsets.bias) == 0


def test_d_abstractor_reference_points_span_the_input_cells():
    """Reference: from the first to the last input-cell centre (16x16: 0.03125 ... 0.96875); pytorch:
    the centres of the output cells (M = 144: 1/24 ... 23/24)."""
    d = _build("d_abstractor")
    xs = d.reference_points[:12, 0]  # the first row of the 12 x 12 grid, (x, y) per point
    assert torch.allclose(xs, torch.linspace(0.5, 15.5, 12) / 16)
    assert xs[0].item() == pytest.approx(0.03125) and xs[-1].item() == pytest.approx(0.96875)
    assert torch.allclose(d.reference_points[::12, 1], torch.linspace(0.5, 15.5, 12) / 16)  # y down the column
    old = _build("d_abstractor", init="pytorch").reference_points[:12, 0]
    assert old[0].item() == pytest.approx(1 / 24) and old[-1].item() == pytest.approx(23 / 24)


def test_d_abstractor_dropout_sites_are_separate_knobs():
    d = _build("d_abstractor", depth=1)
    layer = d.layers[0]
    assert layer.dropout.p == 0.1  # sub-layer outputs
    assert layer.ffn[2].p == 0.0  # after the FFN activation (Deformable DETR's activation_dropout)
    assert layer.self_attn.dropout == 0.0
    other = _build("d_abstractor", depth=1, dropout=0.0, activation_dropout=0.3, attention_dropout=0.2).layers[0]
    assert (other.dropout.p, other.ffn[2].p, other.self_attn.dropout) == (0.0, 0.3, 0.2)


def test_resampler_layernorm_eps_and_float32_norms():
    r = _build("resampler", depth=1)
    layer = r.layers[0]
    assert layer.ffn.norm.eps == 1e-6  # inside SwiGLU: the reference's layer_norm_eps
    assert layer.norm_q.eps == layer.norm_f.eps == layer.norm_ffn.eps == 1e-5
    assert all(isinstance(m, LayerNormFp32) for m in (layer.norm_q, layer.norm_f, layer.norm_ffn, layer.ffn.norm))


def test_layernorm_fp32_keeps_full_precision_under_bf16_autocast():
    torch.manual_seed(0)
    norm = LayerNormFp32(64, eps=1e-6)
    x = (torch.randn(4, 10, 64) * 3 + 5).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x)
    assert y.dtype == torch.bfloat16
    exact = nn.functional.layer_norm(x.float(), (64,), eps=1e-6).bfloat16()
    assert torch.equal(y, exact)


def test_hidden_size_decouples_the_width_from_the_vision_width():
    r = build_projector("resampler", {"num_visual_tokens": 16, "depth": 1, "hidden_size": 32}, 48, 40, (8, 8))
    d = build_projector("d_abstractor", {"num_visual_tokens": 16, "depth": 1, "hidden_size": 32, "num_heads": 4},
                        48, 40, (8, 8))
    x = torch.randn(2, 64, 48)
    assert r(x).shape == d(x).shape == (2, 16, 40)
    assert r.queries.shape[-1] == 32 and r.input_proj.out_features == 32
    assert d.input_proj.out_features == 32 and d.pos_emb.weight.shape == (1, 64, 32)
    same = build_projector("d_abstractor", {"num_visual_tokens": 16, "depth": 1, "num_heads": 4}, 48, 40, (8, 8))
    assert isinstance(same.input_proj, nn.Identity)  # no projection when the widths agree, as the reference


def test_mlp_activation_is_a_knob():
    gelu = build_projector("mlp", {}, 32, 48, (4, 4))
    silu = build_projector("mlp", {"activation": "silu"}, 32, 48, (4, 4))
    assert isinstance(gelu.net[1], nn.GELU) and isinstance(silu.net[1], nn.SiLU)


@pytest.mark.parametrize("name,knobs,needle", [
    ("c_abstractor", {"init": "xavier"}, "init='xavier' is not allowed; use reference or pytorch"),
    ("mlp", {"activation": "relu"}, "activation='relu' is not allowed; use silu or gelu"),
])
def test_bad_init_or_activation_is_a_user_error_before_anything_is_built(name, knobs, needle):
    with pytest.raises(UserError, match=needle.replace("(", r"\(")):
        projector_config(name, knobs)
