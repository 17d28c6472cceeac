"""Adding a projector is one new file: a module dropped into a folder on the projectors package's path (here
a temporary one) is found by the package's discovery, composes as `projector=<name>` without a yaml (its
dataclass holds the defaults), trains through `make train`'s entry point (`projlab.train.main`), is swept with
the token list its class's rule takes, and takes its class's place and colour in the analysis tables and
figures. No other file is edited."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import projlab.projectors
from conftest import TINY_RUN
from projlab.analysis.collect import arm_order, collect_runs
from projlab.analysis.figures import palette
from projlab.analysis.tables import efficiency_table, spatial_table
from projlab.config import group_options, load_config
from projlab.projectors import registry
from projlab.schema import visual_tokens

NAME = "toy_pool"
MODULE = '''
"""A toy projector: average-pool the patch grid to a square, then one Linear."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from projlab.projectors.registry import register
from projlab.projectors.token_rules import SquareGrid


@dataclass
class ToyPoolConfig:
    num_visual_tokens: int = 4  # M: a perfect square no larger than the grid


@register("toy_pool", ToyPoolConfig)
class ToyPool(SquareGrid):
    table_rank = 55  # between c_abstractor (50) and d_abstractor (60)
    source = "a test of the one-file rule"

    def __init__(self, config, vision_dim, llm_dim, grid):
        super().__init__(config, vision_dim, llm_dim, grid)
        self.proj = nn.Linear(vision_dim, llm_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C_vision) -> (B, M, C_llm)"""
        self._check_input(x)
        b, _, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, *self.grid)
        x = nn.functional.adaptive_avg_pool2d(x, math.isqrt(self.num_visual_tokens))
        return self.proj(x.flatten(2).transpose(1, 2))
'''


@pytest.fixture
def toy_projector(tmp_path, monkeypatch) -> str:
    """The module written to a folder of its own, that folder put on the package's path, discovery run again;
    the registry and the package's path are restored afterwards."""
    folder = tmp_path / "more_projectors"
    folder.mkdir()
    (folder / f"{NAME}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(projlab.projectors, "__path__", [*projlab.projectors.__path__, str(folder)])
    monkeypatch.delitem(__import__("sys").modules, f"projlab.projectors.{NAME}", raising=False)
    projlab.projectors.discover()
    yield NAME
    __import__("sys").modules.pop(f"projlab.projectors.{NAME}", None)


@pytest.mark.slow
def test_a_projector_in_one_new_file_trains_and_is_tabulated(toy_projector, runs_dir):
    from projlab.sweeps.grid import GridSpec, expand
    from projlab.train import main

    assert toy_projector in registry.available_projectors() and toy_projector in group_options("projector")
    cfg = load_config([f"projector={toy_projector}"])  # no yaml: the dataclass's defaults
    assert cfg.projector.num_visual_tokens == 4 and visual_tokens(cfg) == 4
    spec = GridSpec(name="one", projectors=[toy_projector], tokens=[4, 9], res=[112], seeds=[0])
    assert [a.label for a in expand(spec)] == ["toy_pool-m4-r112-s0", "toy_pool-m9-r112-s0"]  # its rule takes M

    main([*TINY_RUN, f"projector={toy_projector}", "projector.num_visual_tokens=9", "sweep=one"])
    run = runs_dir / "one" / "toy_pool-m9-r112-s0-joint"
    runs = collect_runs(runs_dir, "one")
    assert list(runs["arm"]) == [run.name] and runs["status"].iloc[0] == "completed"
    assert runs["num_visual_tokens"].iloc[0] == 9 and runs["projector_params"].iloc[0] > 0

    order = arm_order()
    assert order.index("c_abstractor") < order.index(toy_projector) < order.index("d_abstractor")
    colours = palette()
    assert colours[toy_projector] not in {c for n, c in colours.items() if n != toy_projector}
    table = efficiency_table(runs)
    assert list(table.data["projector"]) == [toy_projector] and table.data["status"].iloc[0] == "completed"
    assert toy_projector in set(spatial_table(runs).data["projector"])


def test_every_projector_yaml_holds_its_dataclass_defaults():
    """The dataclass is the one source of a projector's defaults: a yaml (kept for its comments) may name fewer
    settings, never other values. A token count the dataclass leaves unset (derived from the grid) may be
    pinned to what it derives on the 16x16 grid, so the arm's folder name carries M."""
    import dataclasses

    import yaml

    folder = Path(__file__).resolve().parents[1] / "experiments" / "projector"
    for path in sorted(folder.glob("*.yaml")):
        knobs = yaml.safe_load(path.read_text())
        cls = registry.projector_class(knobs.pop("name"))
        defaults = dataclasses.asdict(cls.config_cls())
        assert path.stem == cls.registry_name
        for key, value in knobs.items():
            if key == "num_visual_tokens" and defaults[key] is None and value is not None:
                assert value == cls.resolve_num_visual_tokens(None, (16, 16)), path.name
            else:
                assert defaults[key] == value, f"{path.name}: {key} is {value!r}, its dataclass says {defaults[key]!r}"
