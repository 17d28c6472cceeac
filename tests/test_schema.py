"""Every setting is judged once, by `projlab.schema` when the config is composed: a mistake is one line naming
the key, the value and what is allowed, exit 2, before any model is built, and nothing under the runs root
is created or changed. The seven mistakes of issue 16 through `make train` and `make sweep`, falsy and
wrongly typed values through the rules, and a check that every key of `experiments/` has a rule."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TINY_RUN
from projlab.config import config_dir, group_options, load_config
from projlab.errors import UserError
from projlab.schema import RULES, visual_tokens
from projlab.sweeps import grid


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*"))


@pytest.fixture
def world(tmp_path, runs_dir) -> dict:
    """A runs root holding one earlier run, a plain file, a file that is not a checkpoint, and a cache
    folder that does not exist yet (building any model would create it)."""
    earlier = runs_dir / "single" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "results.json").write_text('{"status": "completed"}\n')
    plain = tmp_path / "plain"
    plain.write_text("a file\n")
    (tmp_path / "notes.ckpt").write_text("not a checkpoint\n")
    return {"runs": runs_dir, "plain": plain, "ckpt": tmp_path / "notes.ckpt", "cache": tmp_path / "fresh-cache"}


# the seven mistakes: (train overrides, sweep flags and overrides, RUNS under a file?, words the line holds)
SEVEN = {
    "RES=0": (["vision.resolution=0"], ["--res", "0"], False, ["vision.resolution=0", "multiple of the patch size 7"]),
    "TOKENS=abc": (["projector.num_visual_tokens=abc"], ["--tokens", "abc"], False, ["abc", "integer"]),
    "SEED=xyz": (["seed=xyz"], ["--seeds", "xyz"], False, ["xyz", "integer"]),
    "RUNS under a file": ([], [], True, ["plain", "is a file, not a folder", "RUNS="]),
    "max_steps=-5": (["stage.max_steps=-5"], ["--", "stage.max_steps=-5"], False, ["stage.max_steps=-5", ">= 1"]),
    "init_from a file": (["stage=stage2", "init_from={ckpt}"], ["--", "stage=stage2", "init_from={ckpt}"], False,
                         ["notes.ckpt", "is not a checkpoint"]),
    "TOKENS=64,,144": (["projector.num_visual_tokens=64,,144"], ["--tokens", "64,,144"], False, ["64,,144"]),
}


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("case", list(SEVEN))
def test_the_seven_mistakes_are_one_line_before_anything_is_built_or_written(world, case, command):
    overrides, flags, runs_under_file, words = SEVEN[case]
    fill = {"ckpt": str(world["ckpt"])}
    if command == "train":
        args = ["-m", "projlab.train", *TINY_RUN, "projector=c_abstractor", *(o.format(**fill) for o in overrides)]
    else:
        flags = [f.format(**fill) for f in flags]
        cut = flags.index("--") if "--" in flags else len(flags)
        args = ["-m", "projlab.sweeps.grid", "--projectors", "c_abstractor", "--tokens", "16", "--name", "s",
                *flags[:cut], "--", *TINY_RUN, *flags[cut + 1:]]  # the case's overrides after TINY_RUN's
    env = {**os.environ, "PROJLAB_CACHE": str(world["cache"]),
           "RUNS": str(world["plain"] / "runs") if runs_under_file else str(world["runs"])}
    before = snapshot(world["runs"])
    line = _one_error_line(subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                                          timeout=300))
    assert all(w in line for w in words), line
    assert snapshot(world["runs"]) == before  # nothing created or changed under the runs root
    assert not world["cache"].exists()  # no tower, no LLM, no feature cache: nothing was built


@pytest.mark.parametrize("overrides, words", [
    # falsy values that would otherwise be read as "not given" and replaced by a default
    (["projector=resampler", "projector.num_heads=0"], ["projector.num_heads=0", ">= 1 or null"]),
    (["projector.hidden_size=0"], ["projector.hidden_size=0"]),
    (["projector.depth=0"], ["projector.depth=0"]),
    (["run_name="], ["run_name=''", "folder name"]),
    (["sweep="], ["sweep=''"]),
    (["init_from="], ["init_from=''"]),
    (["trainer.devices=0"], ["trainer.devices=0"]),
    (["eval.val_every_steps=0"], ["eval.val_every_steps=0"]),
    (["vision.pretrain_steps=null"], ["vision.pretrain_steps=None"]),
    (["data.test=0"], ["data.test=0", "empty"]),
    (["seed=-1"], ["seed=-1", "0..4294967295"]),
    # wrong types and ranges
    (["stage.lr=fast", "stage.max_steps=1.5", "data.scramble=maybe"],
     ["stage.lr='fast'", "stage.max_steps=1.5", "data.scramble='maybe'"]),
    (["stage.lr=0"], ["stage.lr=0", "> 0"]),
    (["stage.batch_size=-3"], ["stage.batch_size=-3"]),
    (["stage.betas=[0.9]"], ["stage.betas=[0.9]"]),
    (["stage.trainable=[projecter]"], ["stage.trainable=['projecter']", "projector"]),
    (["sweep=2024"], ["sweep=2024", "quote"]),
    (["trainer.precision=17"], ["trainer.precision=17", "bf16-mixed"]),
    (["trainer.strategy=deepspeed"], ["trainer.strategy='deepspeed'", "fsdp"]),
    (["llm.dtype=int8"], ["llm.dtype='int8'", "bfloat16"]),
    (["feature_norm=zscore"], ["feature_norm='zscore'", "standardize"]),
    (["vision.image_aspect=letterbox"], ["vision.image_aspect='letterbox'", "resize, crop, pad"]),
    (["vision.feature_layer=5"], ["vision.feature_layer=5", "2 layers"]),
    (["vision.resolution=100"], ["vision.resolution=100", "98 or 105"]),
    (["projector=c_abstractor", "projector.num_visual_tokens=50"], ["num_visual_tokens=50", "perfect square"]),
    (["projector=linear", "projector.num_visual_tokens=64"], ["num_visual_tokens=64", "M = N = 256"]),
    (["+projector.se_ratio=-1"], ["projector.se_ratio=-1", ">= 0"]),
    (["projector=pixel_shuffle", "projector.num_visual_tokens=144"],
     ["num_visual_tokens=144", "16x16", "N / r^2", "(256, 64, 16, 4, 1)"]),
    (["projector=tokenpacker", "projector.norm_eps=-1"], ["projector.norm_eps=-1", ">= 0"]),
    (["data=llava", "data.train_json=/nonexistent.json", "data.image_root=/nonexistent"],
     ["data.train_json='/nonexistent.json'", "does not exist", "data.image_root"]),
])
def test_each_rule_names_the_key_the_value_and_what_is_allowed(runs_dir, overrides, words):
    with pytest.raises(UserError) as err:
        load_config(overrides)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_values_within_the_rules_compose(runs_dir):
    cfg = load_config(["vision.resolution=168", "seed=4294967295", "stage.lr=1", "trainer.devices=auto",
                       "projector=resampler", "projector.num_heads=null", "stage.grad_clip=0"])
    assert cfg.vision.resolution == 168 and cfg.stage.lr == 1 and cfg.projector.num_heads is None
    assert load_config(["projector=blind"]).projector.num_visual_tokens is None


@pytest.mark.parametrize("name", group_options("projector"))
def test_every_projector_config_composes(runs_dir, name):
    """Each experiments/projector/<name>.yaml composes on the default tiny preset (16x16 grid) and asks for
    a token count its projector makes."""
    cfg = load_config([f"projector={name}"])
    assert cfg.projector.name == name
    asked = cfg.projector.num_visual_tokens
    # unset only where the projector fixes M itself: blind emits none, the per-patch projectors N = 256
    assert visual_tokens(cfg) == (asked if asked is not None else 0 if name == "blind" else 256)


def _leaf_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        if key == "defaults":
            continue
        if isinstance(value, dict) and value and f"{prefix}{key}" not in RULES:
            keys += _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def test_every_key_of_experiments_has_a_rule():
    """A new setting in experiments/ must get its rule in projlab.schema (the projector's own settings are
    typed by the projector's config dataclass instead)."""
    root = config_dir()
    keys = _leaf_keys(yaml.safe_load((root / "train.yaml").read_text()))
    for path in root.glob("*/*.yaml"):
        if path.parent.name == "launcher":  # where arms run: read by the sweep drivers (sweeps.launcher), not a run
            continue
        text = path.read_text()
        data = yaml.safe_load(text) or {}
        keys += _leaf_keys(data, "" if "@package _global_" in text else f"{path.parent.name}.")
    missing = sorted({k for k in keys if k not in RULES and not k.startswith("projector.")})
    assert not missing, f"no rule in projlab.schema.RULES for {missing}"
    assert all(callable(check) for check in RULES.values())


def test_a_comma_list_with_an_empty_item_is_refused():
    with pytest.raises(UserError, match="'16,,64' has an empty item"):
        grid.int_list("16,,64", "--tokens")
    with pytest.raises(UserError, match="has an empty item"):
        grid.spec_from_args(grid.parse_args(["--projectors", "c_abstractor,", "--tokens", "16"]))
    assert grid.int_list("16, 64", "--tokens") == [16, 64]
