"""What every setting of a run may be: the rules, checked once when a configuration is composed.

`projlab.config.load_config` calls `validate`, so every command (train, sweeps, search, calibrate, bench)
judges the user's values before anything is built or written. A broken rule is one `UserError` line naming
the key, the value given and what is allowed, e.g.

    vision.resolution=0: must be a positive multiple of the patch size 7 of vision tower 'tiny' (e.g. 112)

All the rules live here: value rules per key (`RULES`), the projector's own settings (typed by its config
dataclass), and the checks that need the vision tower's geometry (read from its config, never by building
it) or a checkpoint's contents. Modules further down may still guard their inputs; a value is judged here.
"""
from __future__ import annotations

import typing
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from projlab.checks import (Check, choice, devices, existing, flag, folder_name, integer, mapping, number,
                            pair_in_unit_interval, text, writable_folder)
from projlab.errors import UserError

SEED_MAX = 2**32 - 1  # numpy's seed range: Lightning replaces a seed outside it (with a warning only)
UNITS = ("vision", "projector", "llm")  # what a stage may train: the units of MLLM.modules_by_name
FEATURE_NORMS = ("none", "standardize")  # FeatureNorm's modes
INIT_KEYS = ("projector", "vision", "llm.name_or_path", "llm.tiny_config")  # what stage-1 weights fit
_ABSENT = object()


# ---- checks that read the project's own option lists (the generic ones: projlab.checks) ----------------
def units() -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and all(u in UNITS for u in v)
        return None if ok else f"must be a list of {', '.join(UNITS)}"

    return check


def _strategies() -> tuple:
    from projlab.training.strategy import STRATEGIES

    return STRATEGIES


def _mixed_precisions() -> tuple:
    from projlab.training.strategy import MIXED_PRECISION

    return tuple(MIXED_PRECISION)


def _precisions() -> tuple:
    from projlab.training.precision import PRECISIONS

    return ("auto", *PRECISIONS)


def _image_aspects() -> tuple:
    from projlab.models.image_processing import IMAGE_ASPECTS

    return IMAGE_ASPECTS


def _feature_dtypes() -> tuple:
    from projlab.models.vision import FEATURE_DTYPES

    return tuple(FEATURE_DTYPES)


def categories(empty: bool = False) -> Check:
    def check(v: Any) -> str | None:
        from projlab.data.spatial import CATEGORIES

        ok = isinstance(v, list) and (v or empty) and len(set(v)) == len(v) and all(c in CATEGORIES for c in v)
        return None if ok else f"must be a list of distinct categories from {', '.join(CATEGORIES)}"

    return check


def _accelerators() -> tuple:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))


def _templates() -> tuple:
    from projlab.data.prompt import TEMPLATES

    return tuple(TEMPLATES)


def _dtypes() -> tuple:
    import torch

    return tuple(n for n in ("float32", "bfloat16", "float16", "float64") if isinstance(getattr(torch, n), torch.dtype))


def _object_counts() -> tuple:
    from projlab.data import spatial

    return tuple(range(2, len(spatial.SHAPES) + 1))  # the named objects and distractors of distinct shapes


# ---- the rules, per key (a key a config does not have is not checked) --------------------------------
RULES: dict[str, Check] = {
    "preset": text(),
    "seed": integer(0, SEED_MAX),
    "sweep": folder_name(),
    "run_name": folder_name(null=True),
    "init_from": text(null=True),  # what it points to: `_init_problem`
    "rerun": flag(),
    "feature_norm": choice(FEATURE_NORMS),
    "feature_cache": choice(("auto", "off")),
    "fail_at_step": integer(0, null=True),
    "callbacks": mapping(),  # each entry built by Hydra from its _target_ (projlab.build.callbacks)
    "eval.batch_size": integer(1),
    "eval.val_every_steps": integer(1),
    "vision.name_or_path": text(),
    "vision.feature_layer": integer(),  # its range needs the tower: `_tower_problems`
    "vision.resolution": integer(),  # a positive multiple of the patch size: `_tower_problems`
    "vision.pretrain_steps": integer(0),
    "vision.feature_dtype": choice(_feature_dtypes),
    "vision.image_aspect": choice(_image_aspects),
    "llm.name_or_path": text(),
    "llm.template": choice(_templates),
    "llm.dtype": choice(_dtypes, null=True),
    "llm.gradient_checkpointing": flag(),
    "llm.tiny_config": mapping(),
    "llm.pretrain_steps": integer(0),
    "llm.attn_implementation": text(null=True),
    "projector.name": text(),  # known names and the projector's own settings: `_projector_problems`
    "data.name": choice(("spatial", "llava")),
    "data.seed": integer(0, SEED_MAX),
    "data.train": integer(1, why="questions per category: a split cannot be empty"),
    "data.val": integer(1, why="questions per category: a split cannot be empty"),
    "data.test": integer(1, why="questions per category: a split cannot be empty"),
    "data.max_objects": choice(_object_counts),
    "data.scramble": flag(),
    "data.categories": categories(),
    "data.warmup_categories": categories(empty=True),
    "data.warmup_steps": integer(0),
    "data.train_json": existing("file"),
    "data.val_json": existing("file"),
    "data.image_root": existing("folder"),
    "data.max_length": integer(1, null=True),
    "stage.name": folder_name(),
    "stage.trainable": units(),
    "stage.requires_init": flag(),
    "stage.lr": number(above=0),
    "stage.min_lr": number(0),
    "stage.warmup_steps": integer(0),
    "stage.max_steps": integer(1),
    "stage.batch_size": integer(1),
    "stage.weight_decay": number(0),
    "stage.betas": pair_in_unit_interval(),
    "stage.eps": number(above=0),
    "stage.grad_clip": number(0),  # 0: no clipping
    "stage.projector_lr_scale": number(above=0),
    "trainer.name": text(),
    "trainer.accelerator": choice(_accelerators),
    "trainer.devices": devices(),
    "trainer.num_nodes": integer(1),
    "trainer.strategy": choice(_strategies),
    "trainer.precision": choice(_precisions),
    "trainer.num_workers": integer(0),
    "trainer.log_every_n_steps": integer(1),
    "trainer.checkpoint_every_steps": integer(1),
    "trainer.progress_bar": flag(),
    "trainer.find_unused_parameters": flag(),
    "trainer.mixed_precision": choice(_mixed_precisions, null=True),
    "trainer.activation_checkpointing": flag(),
    "trainer.distributed_checkpoint": flag(),
    "paths.runs_root": writable_folder("RUNS"),  # experiments/paths/default.yaml reads these variables
    "paths.cache_dir": writable_folder("PROJLAB_CACHE"),
}


def _judge(key: str, value: Any, check: Check) -> str | None:
    problem = check(value)
    return None if problem is None else f"{key}={value!r}: {problem}"


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


# ---- settings whose rules live elsewhere: the projector's dataclass, the tower, a checkpoint ---------
def _knob_check(hint: Any) -> Check:
    """The check for one field of a projector's config dataclass, from its type: integers >= 1 (a 0 would
    read as "unset" where a knob derives its value when it is None), numbers >= 0, a list of such integers
    (an elastic projector's token set)."""
    if typing.get_origin(hint) is list:
        each = integer(1)
        return lambda v: None if isinstance(v, list) and v and not any(map(each, v)) else \
            "must be a non-empty list of integers >= 1"
    args = set(typing.get_args(hint)) or {hint}
    null = type(None) in args
    if int in args:
        return integer(1, null=null)
    if float in args:
        return number(0, null=null)
    return lambda v: None


def _projector_problems(cfg: DictConfig) -> list[str]:
    import projlab.projectors  # noqa: F401  (importing the package registers every projector)
    from projlab.projectors.registry import check_knob_names, projector_class, projector_config

    name = cfg.projector.get("name")
    if not isinstance(name, str):
        return []
    knobs = {k: v for k, v in _value(cfg, "projector").items() if k != "name"}
    try:
        check_knob_names(name, knobs)  # an unknown projector or setting
    except UserError as err:
        return [str(err)]
    hints = typing.get_type_hints(projector_class(name).config_cls)
    problems = []
    for key, value in knobs.items():
        # which token counts a projector makes is its token rule's to say (`visual_tokens`): here, the type
        check = integer(0, null=True) if key == "num_visual_tokens" else _knob_check(hints[key])
        if problem := _judge(f"projector.{key}", value, check):
            problems.append(problem)
    if not problems:  # the values each of the right type: what the projector itself allows (init, activation)
        try:
            projector_config(name, {k: v for k, v in knobs.items() if v is not None})
        except UserError as err:
            problems.append(str(err))
    return problems


@lru_cache(maxsize=None)
def tower_geometry(name_or_path: str) -> tuple[int, int, int]:
    """(patch size, native resolution, layers) of a vision tower, read from its config: nothing is built."""
    if name_or_path == "tiny":
        from projlab.models.presets import TINY_VISION

        return int(TINY_VISION["patch_size"]), int(TINY_VISION["image_size"]), int(TINY_VISION["num_hidden_layers"])
    from transformers import AutoConfig

    from projlab.models.hub import load_pretrained

    config = load_pretrained(AutoConfig.from_pretrained, name_or_path, "vision tower")
    vcfg = getattr(config, "vision_config", config)
    return int(vcfg.patch_size), int(vcfg.image_size), int(vcfg.num_hidden_layers)


def _tower_problems(cfg: DictConfig) -> list[str]:
    tower = cfg.vision.name_or_path
    patch, native, layers = tower_geometry(tower)
    problems = []
    res = cfg.vision.resolution
    if res < 1 or res % patch:
        lower = res - res % patch
        hint = f"nearest: {lower} or {lower + patch}" if res > patch else f"e.g. {native}, the tower's own"
        problems.append(f"vision.resolution={res}: must be a positive multiple of the patch size {patch} of "
                        f"vision tower '{tower}' ({hint})")
    layer = cfg.vision.feature_layer
    if not -layers <= layer <= layers or layer == 0:
        problems.append(f"vision.feature_layer={layer}: must be 1..{layers} or -1..-{layers} (vision tower "
                        f"'{tower}' has {layers} layers)")
    return problems


def projector_knobs(cfg: DictConfig) -> dict:
    """The projector's own settings: everything in `projector` but its name, nulls dropped."""
    knobs = OmegaConf.to_container(cfg.projector, resolve=True)
    knobs.pop("name")
    return {k: v for k, v in knobs.items() if v is not None}


def visual_tokens(cfg: DictConfig) -> int:
    """M, the number of visual tokens the projector will make on the tower's patch grid; UserError if it
    cannot make the count asked for."""
    from projlab.projectors.registry import projector_class, projector_config

    side = cfg.vision.resolution // tower_geometry(cfg.vision.name_or_path)[0]
    cls = projector_class(cfg.projector.name)
    m = cls.resolve_num_visual_tokens(cfg.projector.get("num_visual_tokens"), (side, side))
    cls.served_tokens(projector_config(cfg.projector.name, projector_knobs(cfg)), (side, side))  # an elastic set
    return m


def checkpoint_path(init_from: str) -> Path:
    """The checkpoint `init_from` names: a .ckpt (or a sharded checkpoint folder), or a run folder's last."""
    path = Path(init_from)
    return path / "checkpoints" / "last.ckpt" if (path / "checkpoints").is_dir() else path


@lru_cache(maxsize=8)
def _checkpoint_keys(path: Path, stamp: tuple[float, int]) -> frozenset[str]:
    """The state-dict keys of a full checkpoint file (memory-mapped: its tensors are not read)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return frozenset(state["state_dict"]) if isinstance(state, dict) and isinstance(state.get("state_dict"), dict) \
        else frozenset()


def _init_problem(cfg: DictConfig) -> str | None:
    """init_from must name a readable checkpoint of this project holding projector weights, trained (where
    its run folder says so) with the projector and backbones asked for now."""
    init = cfg.get("init_from")
    if not init:
        if cfg.stage.requires_init:
            return (f"stage {cfg.stage.name!r} starts from a stage-1 checkpoint: give init_from=<run folder or "
                    ".ckpt>")
        return None
    path = checkpoint_path(init)
    where = f"init_from={init!r}: checkpoint '{path}'"
    if not path.exists():
        return f"{where} does not exist; give a run folder or a .ckpt file"
    if path.is_dir():  # a distributed checkpoint: a folder of shards beside meta.pt
        if not (path / "meta.pt").is_file():
            return f"{where} is a folder without meta.pt: not a training checkpoint"
    elif not zipfile.is_zipfile(path):
        return f"{where} is not a checkpoint (not a file torch.save wrote); give a run folder or a .ckpt file"
    else:
        try:
            keys = _checkpoint_keys(path, (path.stat().st_mtime, path.stat().st_size))
        except Exception as err:  # any unreadable or foreign file: say what it is not
            reason = (str(err).splitlines() or [""])[0][:80]
            return (f"{where} cannot be read as a checkpoint ({type(err).__name__}: {reason}); give a run folder "
                    "or a .ckpt file")
        if not any(k.startswith("model.projector.") for k in keys):
            return f"{where} holds no projector weights: not a checkpoint of a projlab run"
    run_config = path.parent.parent / "config.yaml"
    if run_config.is_file():
        from projlab.run_folder import differences

        trained = OmegaConf.to_container(OmegaConf.load(run_config), resolve=True)
        asked = OmegaConf.to_container(cfg, resolve=True)
        diff = differences(trained, asked, keep=INIT_KEYS)
        if diff:
            return f"{where} was trained for other settings ({diff}); its weights would not fit"
    return None


def validate(cfg: DictConfig) -> None:
    """Every rule, on a composed and resolved config; one UserError line listing every broken rule."""
    problems = [p for key, check in RULES.items()
                if (value := _value(cfg, key)) is not _ABSENT and (p := _judge(key, value, check))]
    problems += _projector_problems(cfg)
    if not problems:  # the rules below read well-typed values
        problems += _tower_problems(cfg)
        if not problems:
            try:
                visual_tokens(cfg)
            except UserError as err:
                problems.append(str(err))
        if problem := _init_problem(cfg):
            problems.append(problem)
    if problems:
        raise UserError("; ".join(problems))

