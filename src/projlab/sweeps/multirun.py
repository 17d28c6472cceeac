"""Hydra's sweep syntax, run by the grid's executor:

    python -m projlab.train -m projector=c_abstractor,resampler projector.num_visual_tokens=64,144 [--jobs N]

Every override is read by Hydra's own override parser, so its grammar holds: `a,b` lists, `range(16,65,48)`,
`choice(...)`, `sort(...)`, `shuffle(...)`, and `glob(*abstractor)` over a config group's options. The swept
overrides expand to their product, in the order given; each combination is one arm, checked and run by
`projlab.sweeps.grid` (one process per arm, resumable, sweep.json, the summary table), not by Hydra's
multirun launcher, whose jobs share one process that a Lightning ddp run cannot relaunch.

The sweep is `sweep=NAME` where given, else named after the swept keys and the paper's axes given
(projector, M, resolution, seed: `projlab.sweeps.naming`), as the grid of the same arms is. A swept key
that an arm's folder name leaves out (`stage.lr=1e-3,3e-4`) is added to it (`...-joint-lr_0.001`), so arms
never share a folder. A bad override is one `error:` line.
"""
from __future__ import annotations

import itertools
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from projlab.cli import ArgumentParser, positive_int
from projlab.config import RUN_NAME_KEYS, group_options
from projlab.errors import UserError
from projlab.sweeps.grid import ARM_DEFAULTS, Planned, execute, validate
from projlab.sweeps.launcher import split_launcher
from projlab.sweeps.naming import PREFIXES, sweep_name

MULTIRUN_FLAGS = ("-m", "--multirun")


class _GroupOptions:
    """The one thing Hydra's `glob()` asks of a config loader: the options of a config group."""

    def get_group_options(self, group: str, *args: Any, **kwargs: Any) -> list[str]:
        return group_options(group)


def parse(overrides: list[str]) -> list[Override]:
    """Hydra's reading of each override; a malformed one is a one-line UserError naming it."""
    parser = OverridesParser.create(config_loader=_GroupOptions())
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])  # (the plural sets the loader that glob() asks)
        except HydraException as err:
            reason = next((ln for ln in str(err).splitlines()[1:] if ln and not ln.startswith("See ")), str(err))
            raise UserError(f"override {text!r}: {reason.split(' expecting ')[0]} (Hydra's override grammar)") \
                from None
    return parsed


def _values(override: Override) -> list[str]:
    text, key = override.input_line, override.get_key_element()
    if override.is_interval_sweep():
        raise UserError(f"override {text!r}: interval() is a range to sample, not values to run; give a list, "
                        "range() or choice(), or search it with make search")
    values = list(override.sweep_string_iterator())
    if not values:
        options = group_options(override.key_or_group)
        known = f"options of {key}: {', '.join(options)}" if options else f"{key} is not a config group"
        raise UserError(f"override {text!r} matches nothing ({known})")
    return values


def expand(overrides: list[str]) -> tuple[str | None, list[tuple[str, list[str]]], list[Planned]]:
    """The sweep name given (`sweep=`, else None), the swept axes (key, values) and the arms, one per
    combination of the swept values, each with the fixed overrides as typed."""
    name, axes, choices, swept = None, [], [], []
    for override in parse(overrides):
        key = override.get_key_element()
        if key.lstrip("+~") == "run_name":
            raise UserError(f"override {override.input_line!r}: a sweep names each arm's folder itself "
                            "(sweep=NAME names the sweep)")
        if key.lstrip("+~") == "sweep":
            if override.is_sweep_override():
                raise UserError(f"override {override.input_line!r}: one sweep at a time (sweep=NAME names it)")
            name = override.value()
            continue
        if override.is_sweep_override():
            values = _values(override)
            swept.append(key)
            choices.append([f"{key}={v}" for v in values])
        else:
            values = [override.value()]
            choices.append([override.input_line])
        if override.is_sweep_override() or key in PREFIXES:  # the paper's axes are named, swept or not
            axes.append((key, values))
    arms = []
    for combo in itertools.product(*choices):
        chosen = [ov for ov in combo if ov.partition("=")[0] in swept]
        outside = [ov.partition("=") for ov in chosen if ov.partition("=")[0].lstrip("+~") not in RUN_NAME_KEYS]
        projector = next((ov.partition("=")[2] for ov in combo if ov.startswith("projector=")), "")
        suffix = sweep_name([(key, [value]) for key, _, value in outside]) if outside else ""
        arms.append(Planned(projector, " ".join(chosen) or "the arm", list(combo), suffix))
    return name, axes, arms


def main(argv: list[str]) -> None:
    """`python -m projlab.train -m ...` (the flag already taken off): plan, check and run the sweep."""
    p = ArgumentParser(prog="python -m projlab.train -m", description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="arms run at once, the cores split between them (default 1)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the arms, run nothing")
    p.add_argument("overrides", nargs="*", help="Hydra overrides; `a,b`, range(), choice(), glob() sweep")
    args = p.parse_intermixed_args(argv)
    launcher, overrides = split_launcher(args.overrides)  # launcher=slurm: one SLURM job per arm
    given, axes, planned = expand(overrides)
    name = str(given) if given is not None else sweep_name(axes)
    planned = [a._replace(overrides=[*ARM_DEFAULTS, *a.overrides, f"sweep={name}"]) for a in planned]
    execute(name, validate(planned, name), args.jobs, args.dry_run, launcher)
