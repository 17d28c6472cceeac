"""Grid sweeps: projector x tokens x resolution x seed, one process per arm, resumable.

    python -m projlab.sweeps.grid [--projectors a,b] [--tokens 64,144,256] [--res 112,168] [--seeds 0,1]
                                  [--name NAME] [--spec sweeps/default.yaml] [--jobs N] [--dry-run]
                                  [-- overrides...]

The spec file gives the defaults (lists, sweep name, fixed Hydra overrides for every arm); the flags replace
its lists. Projectors whose M is fixed (per-patch ones keep M = N, `blind` has none) appear once per
resolution x seed, with no token override. Every arm is composed and validated before anything runs, and
every invalid arm is reported at once (exit 2), as is an arm whose folder holds a run of other settings
(`projlab.run_folder`; `rerun=true` trains every arm again, the previous runs set aside). Arms land in
`<runs>/<name>/<arm>/` (train.log beside results.json); `<runs>/<name>/sweep.json` lists them with their
status. The name is --name, else the spec's `name` where --spec is given (or no list is), else derived
from the lists given (`projlab.sweeps.naming`: `--projectors c_abstractor --tokens 64,144,256` is
`c_abstractor-m64_144_256`), so a grid of the command line has its own folder and re-running it resumes.
Re-running the same command skips completed arms and re-runs the others (training resumes from their
last checkpoint); an arm another process holds (a second sweep) is skipped, its holder named.
`--jobs N` runs N arms at once, each its own process with 1/N of the cores. The override `launcher=slurm`
(with any `launcher.KEY=VALUE`, `projlab.sweeps.launcher`) submits each arm as a SLURM job instead. Exit code: 0 if every arm
completed, 1 if any did not, 128+signal when stopped by a signal.

The spec is `projlab.sweeps.specs.GridSpec`; running the arms is `projlab.sweeps.executor`'s. Importable
pieces (for `projlab.sweeps.calibrate`, `projlab.sweeps.multirun` and tests): `expand`, `check_arm`, `plan`,
`validate`, `execute`, `summary_table`.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from projlab.cli import ArgumentParser, jobs_count
from projlab.config import arm_label, load_config, run_name
from projlab.errors import UserError, exit_on_user_error
from projlab.results import read_results
from projlab.run_folder import config_problem
from projlab.sweeps import runner
from projlab.sweeps.executor import resolve_jobs, run_grid
from projlab.sweeps.launcher import split_launcher
from projlab.sweeps.naming import sweep_name
from projlab.sweeps.runner import Arm
from projlab.sweeps.specs import GridSpec, check_reserved, int_list, load_spec, str_list

DEFAULT_SPEC = Path(__file__).resolve().parents[3] / "sweeps" / "default.yaml"
ARM_DEFAULTS = ["trainer.progress_bar=false"]  # an arm writes to a log file: no live bar (overridable)


# ---- expansion and validation ------------------------------------------------------------------------
def _takes_tokens() -> dict[str, bool]:
    """Registry name -> whether a sweep's token list sets its M (`Projector.takes_token_request`)."""
    import projlab.projectors  # noqa: F401  (importing the package registers every projector)
    from projlab.projectors.registry import available_projectors, projector_class

    return {name: projector_class(name).takes_token_request for name in available_projectors()}


class Planned(NamedTuple):
    """An arm as expanded, not yet validated: `label` names it in error lines; `suffix`, where given, is
    added to its folder name (a swept setting that the name leaves out)."""

    projector: str
    label: str
    overrides: list[str]
    suffix: str = ""


def expand(spec: GridSpec, extra: list[str] | tuple[str, ...] = ()) -> list[Planned]:
    """The arms of `spec` before any validation, in projector x tokens x res x seed order; unknown
    projectors are kept (once per resolution x seed) so that `plan` can report them. Composes nothing."""
    takes = _takes_tokens()
    arms: list[Planned] = []
    for proj in spec.projectors:
        fixed = not takes.get(proj, False)
        for tokens, res, seed in itertools.product([None] if fixed else spec.tokens, spec.res, spec.seeds):
            label = arm_label(proj, tokens, res, seed)
            ovr = [*ARM_DEFAULTS, *spec.overrides, f"projector={proj}"]
            if tokens is not None:
                ovr.append(f"projector.num_visual_tokens={tokens}")
            ovr += [f"vision.resolution={res}", f"seed={seed}", *spec.projector_overrides.get(proj, []), *extra]
            ovr.append(f"sweep={spec.name}")
            arms.append(Planned(proj, label, ovr))
    for control, control_ovr in spec.controls.items():
        # the projector it names, else "" (the configs' default projector, checked when the arm is composed)
        proj = next((o.partition("=")[2] for o in control_ovr if o.startswith("projector=")), "")
        for res, seed in itertools.product(spec.res, spec.seeds):
            ovr = [*ARM_DEFAULTS, *spec.overrides, *control_ovr, f"vision.resolution={res}", f"seed={seed}", *extra]
            arms.append(Planned(proj, f"{control}-r{res}-s{seed}", [*ovr, f"sweep={spec.name}"]))
    return arms


def check_arm(overrides: list[str]) -> tuple[Any, int]:
    """Compose one arm (every setting checked: `projlab.schema`) and its token count M (`build.check`, what a
    run asks before it builds); UserError if invalid."""
    from projlab import build  # loads torch and Lightning: only where arms are checked (not a search's workers)

    cfg = load_config(overrides)
    return cfg, build.check(cfg)


def _one_error(problems: list[tuple[str, str]]) -> UserError:
    """One line where every invalid arm has the same problem (a bad setting given to all), else a line per arm."""
    messages = list(dict.fromkeys(msg for _, msg in problems))
    if len(messages) == 1:
        labels = [label for label, _ in problems if label]
        which = ", ".join(labels) if len(labels) <= 3 else f"{len(labels)} arms"
        return UserError(f"{messages[0]} ({which + '; ' if which else ''}nothing was run)")
    lines = "\n".join(f"  {label}: {msg}" if label else f"  {msg}" for label, msg in problems)
    return UserError(f"{len(problems)} invalid arm(s), nothing was run:\n{lines}")


def plan(spec: GridSpec, extra: list[str] | tuple[str, ...] = ()) -> list[Arm]:
    """Expand and validate every arm; raise one UserError listing every invalid arm (one line each)."""
    check_reserved([*spec.overrides, *extra])
    if not spec.projectors or not spec.res or not spec.seeds:
        raise UserError("empty grid: give at least one projector, resolution and seed")
    known = _takes_tokens()
    if not spec.tokens and any(known.get(p, False) for p in spec.projectors):
        raise UserError("no token counts: give --tokens (or tokens: in the spec)")
    problems = [
        ("", f"{p}: unknown projector; known: {', '.join(sorted(known))}") for p in dict.fromkeys(spec.projectors)
        if p not in known
    ]
    return validate([a for a in expand(spec, extra) if not a.projector or a.projector in known], spec.name, problems)


def validate(planned: list[Planned], sweep: str, problems: list[tuple[str, str]] | None = None) -> list[Arm]:
    """Compose and check every arm of the sweep `sweep` (its settings, and a folder that holds no run of
    other settings); raise one UserError listing every invalid arm with `problems` already found."""
    problems = list(problems or [])
    arms: dict[str, Arm] = {}
    for _, label, overrides, suffix in planned:
        try:
            cfg, m = check_arm(overrides)
        except UserError as err:
            problems.append((label, str(err)))
            continue
        name = f"{run_name(cfg)}-{suffix}" if suffix else run_name(cfg)
        run_dir = Path(cfg.paths.runs_root) / sweep / name
        asked = OmegaConf.to_container(cfg, resolve=True)
        other = config_problem(run_dir, asked, "rerun=true replaces it, another NAME= (--name) keeps both")
        if other:
            problems.append((label, other))
        overrides = [*overrides, f"run_name={name}"] if suffix else overrides
        arms.setdefault(name, Arm(name, run_dir, tuple(overrides), m, bool(cfg.rerun), asked))
    if problems:
        raise _one_error(problems)
    return list(arms.values())


# ---- the summary -------------------------------------------------------------------------------------
def summary_table(arms: list[Arm]) -> str:
    """Arm, status, accuracy, per-category accuracies, step time, steps, wall time: one row per arm."""
    records = {a.name: read_results(a.run_dir) or {} for a in arms}
    cats: list[str] = []
    for r in records.values():
        for c in ((r.get("metrics") or {}).get("per_category") or {}):
            if c not in cats:
                cats.append(c)
    header = ["arm", "status", "acc", *cats, "step_s", "steps", "wall_s"]
    rows = [header]
    for arm in arms:
        r = records[arm.name]
        m, e = r.get("metrics") or {}, r.get("efficiency") or {}
        per = m.get("per_category") or {}
        rows.append([
            arm.name, r.get("status", "pending"), _fmt(m.get("accuracy"), 3),
            *(_fmt((per.get(c) or {}).get("accuracy"), 3) for c in cats),
            _fmt(e.get("step_time_s"), 3), _fmt(e.get("steps"), 0), _fmt(e.get("wall_time_s"), 0),
        ])
    return _aligned(rows, left=2)


def axis_summary(sweep_dir: Path) -> str:
    """The sweep's steps along M and the resolution, per projector (`analysis.stats.axis_steps`): one row per
    step, one column per category, the change in accuracy in points, `*` where the McNemar test over the
    questions paired by (seed, question) rejects; empty when the sweep steps neither axis."""
    from projlab.analysis.collect import collect_predictions
    from projlab.analysis.stats import ALPHA, axis_steps

    steps = axis_steps(collect_predictions(sweep_dir.parent, sweep_dir.name))
    if steps.empty:
        return ""
    cats = list(dict.fromkeys(steps["category"]))
    rows = [["projector", "step", "seeds", *cats]]
    for (projector, axis, stage, fixed, low, high), step in steps.groupby(
            ["projector", "axis", "stage", "fixed", "low", "high"], sort=False):
        what = f"M {low}->{high} at {fixed} px" if axis == "num_visual_tokens" else f"{low}->{high} px at M={fixed}"
        diff = dict(zip(step["category"], step["diff"] * 100))
        star = dict(zip(step["category"], step["p_mcnemar"] < ALPHA))
        rows.append([projector, f"{what} ({stage})", str(step["seeds"].max()),
                     *(f"{diff[c]:+.1f}{'*' if star[c] else ''}" if c in diff else "-" for c in cats)])
    note = (f"accuracy change in points from the lower value to the higher; * exact McNemar p < {ALPHA} over the "
            "questions paired by (seed, question), seeds pooled")
    return _aligned(rows, left=2) + "\n" + note


def _aligned(rows: list[list[str]], left: int) -> str:
    """Text columns, the first `left` left-aligned and the rest right-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) or digits == 0 else str(value)


# ---- command line ------------------------------------------------------------------------------------
def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse the flags before `--`; everything after it (and any bare `key=value`) is a Hydra override."""
    argv = list(argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.overrides = [*args.overrides, *argv[cut + 1:]]
    return args


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m projlab.sweeps.grid", description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", help="grid spec YAML (default sweeps/default.yaml); its `name` names the sweep")
    p.add_argument("--projectors", help="comma-separated projector names (replaces the spec's list)")
    p.add_argument("--tokens", help="comma-separated token counts M")
    p.add_argument("--res", help="comma-separated image resolutions")
    p.add_argument("--seeds", help="comma-separated seeds")
    p.add_argument("--name", help="sweep name: arms go to <runs>/<name>/ (default: the spec's name, or one "
                                  "derived from the lists given, e.g. c_abstractor-m64_144_256)")
    p.add_argument("--jobs", type=jobs_count, default=1,
                   help="arms run at once, the cores split between them; auto: one per core without a GPU, "
                        "one with (default 1)")
    p.add_argument("--dry-run", action="store_true", help="validate and list the arms, run nothing")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every arm (after --)")
    return parse_with_overrides(p, argv)


GRID_FLAGS = ("projectors", "tokens", "res", "seeds")


def spec_from_args(args: argparse.Namespace) -> GridSpec:
    """The spec file's grid with the flags' lists in place of its own. Its name: --name; else the spec's,
    where a spec was given or no list was; else one derived from the grid (`default_name`), so that a grid
    of the command line never lands in the folder of the default sweep."""
    spec = load_spec(args.spec or DEFAULT_SPEC)
    if args.projectors is not None:
        spec.projectors = str_list(args.projectors, "--projectors")
        spec.controls = {}
    for flag in ("tokens", "res", "seeds"):
        if getattr(args, flag) is not None:
            setattr(spec, flag, int_list(getattr(args, flag), f"--{flag}"))
    if args.name is not None:
        if not args.name or "/" in args.name or args.name.startswith("."):
            raise UserError(f"--name {args.name!r}: give a plain folder name")
        spec.name = args.name
    elif args.spec is None and any(getattr(args, flag) is not None for flag in GRID_FLAGS):
        spec.name = default_name(spec, given={flag for flag in GRID_FLAGS if getattr(args, flag) is not None})
    return spec


def default_name(spec: GridSpec, given: set[str]) -> str:
    """The projectors (and controls), M where a projector takes it, and resolution and seeds where `given`
    on the command line: `c_abstractor-m64_144_256`, `c_abstractor_resampler-m16-r112_168-s0_1`."""
    takes_m = any(_takes_tokens().get(p, False) for p in spec.projectors)
    axes: list[tuple[str, list]] = [("projector", [*spec.projectors, *spec.controls])]
    if takes_m and spec.tokens:
        axes.append(("projector.num_visual_tokens", spec.tokens))
    axes += [(key, getattr(spec, flag)) for flag, key in (("res", "vision.resolution"), ("seeds", "seed"))
             if flag in given]
    return sweep_name(axes)


def execute(
    name: str, arms: list[Arm], jobs: int | str = 1, dry_run: bool = False, launcher: DictConfig | None = None,
) -> None:
    """Run validated arms as the sweep `name` (or only list them): progress, the summary table, and the
    exit code (0 every arm completed, 1 one did not, 128+signal when stopped by a signal)."""
    sweep_dir = arms[0].run_dir.parent
    if dry_run:
        for arm in arms:
            print(f"{arm.name}  M={arm.num_visual_tokens}  {' '.join(runner.train_command(list(arm.overrides))[1:])}")
        print(f"{len(arms)} arm(s) valid; would run into {sweep_dir}")
        return
    t0 = time.perf_counter()
    jobs = resolve_jobs(jobs, len(arms))
    slurm = launcher is not None and launcher.name == "slurm"
    at_once = ", as SLURM jobs" if slurm else f", {jobs} at a time" if jobs > 1 else ""
    figures = f"make figures NAME={name}"
    print(f"sweep {name}: {len(arms)} arm(s){at_once} -> {sweep_dir}; {figures}", flush=True)
    run_grid(arms, sweep_dir, name, jobs=jobs, launcher=launcher)
    print("\n" + summary_table(arms))
    axes = axis_summary(sweep_dir)
    if axes:
        print("\nsteps along the study's axes\n" + axes)
    statuses = [(read_results(a.run_dir) or {}).get("status") for a in arms]
    done = statuses.count("completed")
    print(f"\n{done}/{len(arms)} completed in {time.perf_counter() - t0:.0f} s; {sweep_dir / 'sweep.json'}; {figures}")
    signum = runner.interrupted()
    if signum:
        again = "re-attach" if slurm else "resume"
        print(f"stopped by signal {signum}; re-run the same command to {again}", file=sys.stderr)
        sys.exit(128 + signum)
    sys.exit(0 if done == len(arms) else 1)


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    launcher, args.overrides = split_launcher(args.overrides)
    spec = spec_from_args(args)
    execute(spec.name, plan(spec, args.overrides), args.jobs, args.dry_run, launcher)


if __name__ == "__main__":
    main()
