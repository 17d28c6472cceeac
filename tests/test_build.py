"""The assembly (`projlab.build`) and the model's one visual path: every config composes, the visual tokens land
exactly on the `<image>` slots, features and pixels give the same logits, and a trained tiny run comes back
ready to evaluate."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY_RUN
from projlab import build
from projlab.config import compose_config, config_dir, group_options, load_config
from projlab.errors import UserError
from projlab.schema import tower_geometry

# what a group's option needs before it composes: settings only the user can give (files made in tmp_path)
NEEDS = {("data", "llava"): ["data.train_json={tmp}/mix.json", "data.image_root={tmp}"]}
RUN_GROUPS = sorted(p.name for p in config_dir().iterdir() if p.is_dir() and p.name != "launcher")  # launcher: the sweep drivers'


def _local(cfg) -> bool:
    """Its tower's geometry can be read here (the tiny preset, or weights already on disk or cached)."""
    try:
        tower_geometry(cfg.vision.name_or_path)
    except UserError:
        return False
    return True


@pytest.mark.parametrize("group,option", [(g, o) for g in RUN_GROUPS for o in group_options(g)])
def test_every_config_of_experiments_composes(runs_dir, tmp_path, group, option):
    """Composed and resolved, every option of every group; checked against every rule too wherever its tower
    can be read offline and it needs no checkpoint to start from (stage 2's init_from)."""
    (tmp_path / "mix.json").write_text("[]")
    overrides = [f"{group}={option}", *(o.format(tmp=tmp_path) for o in NEEDS.get((group, option), []))]
    cfg = compose_config(overrides)
    chosen = cfg.get(group) if group != "experiment" else cfg
    assert chosen is not None and OmegaConf.to_container(cfg, resolve=True)
    if _local(cfg) and not cfg.stage.requires_init:
        assert load_config(overrides).stage.name == cfg.stage.name


@pytest.fixture(scope="module")
def model(cache_dir):
    """A tiny MLLM (M = 16) with a feature norm that does something (random statistics)."""
    mllm = build.model(load_config(["projector=c_abstractor", "projector.num_visual_tokens=16"])).eval()
    g = torch.Generator().manual_seed(0)
    c = mllm.vision.hidden_size
    mllm.feature_norm.set_stats(torch.randn(c, generator=g), torch.rand(c, generator=g) + 0.5)
    return mllm


def _sequences(mllm, m: int, at: list[int], length: int = 40) -> torch.Tensor:
    """Token ids (B, length): random text with M image tokens starting at `at[b]` in row b."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, len(mllm.llm.tokenizer) - 1, (len(at), length), generator=g)
    ids[ids == mllm.llm.image_token_id] = 5
    for b, start in enumerate(at):
        ids[b, start : start + m] = mllm.llm.image_token_id
    return ids


def test_the_visual_tokens_land_exactly_on_the_image_slots_in_order(model):
    m, width = model.num_visual_tokens, model.llm.hidden_size
    ids = _sequences(model, m, at=[3, 11])
    visual = torch.randn(2, m, width)
    with torch.no_grad():
        embeds = model.embed_inputs(ids, visual)
        text = model.llm.embed(ids)
    slots = ids == model.llm.image_token_id
    assert slots.sum(-1).tolist() == [m, m]
    for b in range(2):
        assert torch.equal(embeds[b][slots[b]], visual[b].to(embeds.dtype))  # the M tokens, in their order
        assert torch.equal(embeds[b][~slots[b]], text[b][~slots[b]])  # every text embedding untouched


def test_features_and_pixels_give_the_same_logits(model):
    from projlab.data import spatial

    images = [spatial.render(item.objects, model.vision.resolution) for item in spatial.generate("t", 1, seed=2)[:2]]
    pixels = model.vision.preprocess(images)
    ids = _sequences(model, model.num_visual_tokens, at=[2, 7])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        features = model.vision(pixels)  # what the feature cache holds for a frozen tower
        by_pixels = model.encode_images(pixel_values=pixels)
        by_features = model.encode_images(features=features)
        logits_pixels = model(ids, mask, by_pixels).logits
        logits_features = model(ids, mask, by_features).logits
    assert by_pixels.shape == (2, model.num_visual_tokens, model.llm.hidden_size)
    assert torch.equal(by_pixels, by_features)
    assert torch.equal(logits_pixels, logits_features)
    assert not torch.equal(logits_pixels, model(ids, mask, torch.zeros_like(by_pixels)).logits)  # they are read


def test_the_blind_control_runs_no_tower_and_leaves_the_sequence_as_text(cache_dir):
    blind = build.model(load_config(["projector=blind"])).eval()
    ids = torch.randint(5, 50, (2, 12))
    with torch.no_grad():
        assert blind.encode_images(pixel_values=None) is None  # the tower is never asked
        assert torch.equal(blind.embed_inputs(ids, None), blind.llm.embed(ids))
        assert torch.equal(blind(ids, torch.ones_like(ids)).logits,
                           blind.llm.model(inputs_embeds=blind.llm.embed(ids), use_cache=False).logits)


@pytest.fixture(scope="module")
def tiny_run(cache_dir, tmp_path_factory):
    """A tiny c_abstractor run (M = 16), trained in this process."""
    from projlab.train import run

    root = tmp_path_factory.mktemp("runs")
    record = run(load_config([*TINY_RUN, "projector=c_abstractor", "projector.num_visual_tokens=16", "sweep=b",
                              f"paths.runs_root={root}"]))
    assert record["status"] == "completed"
    return record


def test_trained_gives_the_run_back_ready_to_evaluate(tiny_run):
    from pathlib import Path

    run_dir = Path(tiny_run["run_dir"])
    got = build.trained(run_dir)
    assert got.run_dir == run_dir and got.cfg.projector.num_visual_tokens == 16
    assert not got.module.training and got.module.model.num_visual_tokens == 16
    assert got.processor.num_visual_tokens == 16 and got.processor.max_length is None  # every question scored
    state = build.load_state_dict(run_dir / "checkpoints" / "last.ckpt")
    weights = got.module.state_dict()
    projector = [k for k in state if k.startswith("model.projector.")]
    assert projector and all(torch.equal(weights[k], state[k]) for k in projector)
    assert torch.equal(weights["model.feature_norm.mean"], state["model.feature_norm.mean"])  # the run's statistics
    again = build.trained(run_dir / "checkpoints" / "last.ckpt")  # the checkpoint path names the same run
    assert again.run_dir == run_dir
    with pytest.raises(UserError, match="not a run folder"):
        build.trained(run_dir / "checkpoints")


def test_a_callback_enters_through_config(runs_dir, tmp_path):
    """`callbacks.<name>: {_target_: class, arguments}` adds a Lightning callback to the run (how a search's
    trial adds its pruning callback), without train.py knowing it."""
    plain = ["trainer.progress_bar=false", "fail_at_step=3"]
    cfg = load_config([*plain, "+callbacks.timer._target_=lightning.pytorch.callbacks.Timer",
                       "+callbacks.timer.duration=00:00:05:00"])
    built = build.callbacks(cfg, tmp_path)
    assert [type(c).__name__ for c in built] == ["ModelCheckpoint", "LearningRateMonitor", "ProgressFile", "Timer",
                                                 "FailAt"]
    assert built[3]._duration == 300
    assert "Timer" not in [type(c).__name__ for c in build.callbacks(load_config(plain), tmp_path)]
