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

Importable pieces (for `projlab.sweeps.calibrate`, `projlab.sweeps.multirun` and tests): `load_spec`,
`expand`, `check_arm`, `plan`, `validate`, `run_grid`, `execute`, `summary_table`, `write_sweep_json`.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from projlab.cli import ArgumentParser, positive_int
from projlab.config import arm_label, load_config, run_name
from projlab.errors import UserError, exit_on_user_error
from projlab.io import read_yaml_mapping, write_json
from projlab.results import read_results
from projlab.run_folder import config_problem
from projlab.schema import visual_tokens
from projlab.sweeps import runner
from projlab.sweeps.launcher import split_launcher
from projlab.sweeps.naming import sweep_name
from projlab.sweeps.view import open_view

DEFAULT_SPEC = Path(__file__).resolve().parents[3] / "sweeps" / "default.yaml"
RESERVED = ("sweep", "run_name")  # set by the sweep itself
ARM_DEFAULTS = ["trainer.progress_bar=false"]  # an arm writes to a log file: no live bar (overridable)


@dataclass
class GridSpec:
    """What a grid sweep covers. `overrides` go to every arm; `projector_overrides[name]` to that
    projector's arms only (e.g. a depth that only one projector has)."""

    name: str = "default"
    projectors: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    res: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)
    projector_overrides: dict[str, list[str]] = field(default_factory=dict)
    # data-side controls, label -> overrides (e.g. scrambled: [projector=mlp, data.scramble=true]), run once
    # per resolution x seed; left out when --projectors picks the projectors
    controls: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Arm:
    """One validated arm: its folder name (the run name train.py derives), folder and Hydra overrides;
    `config`, the resolved config asked for, is what a completed run in its folder must have been."""

    name: str
    run_dir: Path
    overrides: tuple[str, ...]
    num_visual_tokens: int
    rerun: bool = False
    config: dict[str, Any] | None = field(default=None, compare=False, hash=False)


# ---- the spec ---------------------------------------------------------------------------------------
def _items(text: str, what: str) -> list[str]:
    """The items of a comma list; an empty one (`64,,144`, a trailing comma) is a mistake, not skipped."""
    items = [v.strip() for v in text.split(",")]
    if any(not v for v in items):
        raise UserError(f"{what}: {text!r} has an empty item; give values separated by single commas")
    return items


def int_list(value: Any, what: str) -> list[int]:
    items = value if isinstance(value, list) else _items(str(value), what)
    if any(isinstance(v, bool) or isinstance(v, float) for v in items):
        raise UserError(f"{what}: {value!r} is not a list of integers")
    try:
        return [int(str(v).strip()) for v in items]
    except ValueError:
        raise UserError(f"{what}: {value!r} is not a list of integers") from None


def _str_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        return _items(value, what)
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise UserError(f"{what}: {value!r} is not a list of names")
    return [str(v) for v in value]


def load_spec(path: str | Path) -> GridSpec:
    """Read a grid spec YAML; a missing file, bad YAML or unknown key is a one-line UserError."""
    path = Path(path)
    data = read_yaml_mapping(path, "sweep spec")
    known = {f.name for f in dataclasses.fields(GridSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"sweep spec '{path}': unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    per_projector = data.get("projector_overrides") or {}
    controls = data.get("controls") or {}
    for key, value in (("projector_overrides", per_projector), ("controls", controls)):
        if not isinstance(value, dict):
            raise UserError(f"sweep spec '{path}': {key} must map a name to a list of overrides")
    return GridSpec(
        name=str(data.get("name", "default")),
        projectors=_str_list(data.get("projectors", []), "projectors"),
        tokens=int_list(data.get("tokens", []), "tokens"),
        res=int_list(data.get("res", []), "res"),
        seeds=int_list(data.get("seeds", [0]), "seeds"),
        overrides=_str_list(data.get("overrides") or [], "overrides"),
        projector_overrides={str(k): _str_list(v or [], f"projector_overrides.{k}") for k, v in per_projector.items()},
        controls={str(k): _str_list(v or [], f"controls.{k}") for k, v in controls.items()},
    )


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
    """Compose one arm (every setting checked: `projlab.schema`) and its token count M; UserError if invalid."""
    cfg = load_config(overrides)
    return cfg, visual_tokens(cfg)


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
    for ov in [*spec.overrides, *extra]:
        if ov.partition("=")[0].lstrip("+~") in RESERVED:
            raise UserError(f"override {ov!r}: the sweep sets {ov.partition('=')[0]} itself (use --name)")
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


# ---- running -----------------------------------------------------------------------------------------
def _arm_entry(
    arm: Arm, outcome: runner.ArmOutcome | None, pid: int | None = None, job: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record = outcome.record if outcome else read_results(arm.run_dir)
    queued = job is not None and outcome is None  # a SLURM job not yet ended
    entry = {
        "name": arm.name,
        "run_dir": str(arm.run_dir),
        "overrides": list(arm.overrides),
        "status": "running" if pid or queued else (record or {}).get("status", "pending"),
        "accuracy": ((record or {}).get("metrics") or {}).get("accuracy"),
        "error": (record or {}).get("error"),
    }
    if outcome is not None:
        entry.update(returncode=outcome.returncode, seconds=round(outcome.seconds, 1), skipped=outcome.skipped)
    if pid:
        entry["pid"] = pid
    if job:
        entry.update(job)
    return entry


def write_sweep_json(
    sweep_dir: Path, name: str, arms: list[Arm], outcomes: dict[str, runner.ArmOutcome],
    running: dict[str, int] | None = None, jobs: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """`<runs>/<name>/sweep.json` (atomic): every arm with its current status; `running` maps the arms
    running now to their process ids, `jobs` the arms submitted to SLURM to their job (id, state, attempts)."""
    running, jobs = running or {}, jobs or {}
    entries = [_arm_entry(a, outcomes.get(a.name), running.get(a.name), jobs.get(a.name)) for a in arms]
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    return write_json(
        sweep_dir / "sweep.json",
        {"name": name, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "counts": counts, "arms": entries},
    )


def _progress(outcome: runner.ArmOutcome) -> str:
    if outcome.holder:
        return f"skipped: {outcome.run_dir} is in use by {outcome.holder}"
    if outcome.status == "completed":
        acc = f" {outcome.accuracy:.3f}" if outcome.accuracy is not None else ""
        return f"completed{acc} ({'already done, skipped' if outcome.skipped else f'{outcome.seconds:.0f} s'})"
    return f"{outcome.status}: {outcome.error or '?'} ({outcome.seconds:.0f} s)"


def available_cores() -> int:
    """The cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def arm_env(jobs: int) -> dict[str, str] | None:
    """The environment of an arm when `jobs` arms share the machine: the cores split evenly between them
    (torch takes its thread count from OMP_NUM_THREADS), so that parallel arms do not oversubscribe."""
    if jobs <= 1:
        return None
    threads = str(max(1, available_cores() // jobs))
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_grid(
    arms: list[Arm], sweep_dir: Path, name: str, out=sys.stdout, jobs: int = 1, launcher: DictConfig | None = None,
) -> list[runner.ArmOutcome]:
    """Run every arm (completed ones are skipped), `jobs` at a time, shown as they go (`projlab.sweeps.view`:
    a live table on a terminal, else a line per event), keeping sweep.json current. After a signal no new
    arm starts; running arms record their end first. Under `launcher=slurm` every arm is a SLURM job
    (`projlab.sweeps.slurm`), as many at once as the cluster runs; a signal leaves the jobs running."""
    runner.forward_signals()
    if launcher is not None and launcher.name == "slurm":
        return _run_grid_slurm(arms, sweep_dir, name, out, launcher)
    outcomes: dict[str, runner.ArmOutcome] = {}
    running: dict[str, int] = {}
    lock = threading.Lock()  # guards outcomes, running and sweep.json
    env = arm_env(jobs)
    write_sweep_json(sweep_dir, name, arms, outcomes)

    def run_one(i: int, arm: Arm) -> None:
        if runner.interrupted():
            return

        def started(pid: int) -> None:
            with lock:
                running[arm.name] = pid
                write_sweep_json(sweep_dir, name, arms, outcomes, running)
            view.started(i, pid)

        # launched and waited on by this same thread: the arm's parent-death signal follows the thread
        outcome = runner.run_arm(list(arm.overrides), arm.run_dir, env=env, on_start=started, rerun=arm.rerun,
                                 expected=arm.config)
        with lock:
            running.pop(arm.name, None)
            outcomes[arm.name] = outcome
            write_sweep_json(sweep_dir, name, arms, outcomes, running)
        view.finished(i, "skipped" if outcome.holder else outcome.status, _progress(outcome))

    with open_view(name, [(a.name, a.run_dir) for a in arms], out) as view:
        if jobs == 1:
            for i, arm in enumerate(arms, 1):
                run_one(i, arm)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in [pool.submit(run_one, i, arm) for i, arm in enumerate(arms, 1)]:
                    future.result()
    return [outcomes[a.name] for a in arms if a.name in outcomes]


def _run_grid_slurm(arms: list[Arm], sweep_dir: Path, name: str, out, launcher: DictConfig) -> list[runner.ArmOutcome]:
    from projlab.sweeps import slurm

    queue = slurm.Queue(launcher, sweep_dir, name)
    outcomes: dict[str, runner.ArmOutcome] = {}

    def save(jobs: dict[str, slurm.Job]) -> None:
        write_sweep_json(sweep_dir, name, arms, outcomes, jobs={a: j.entry() for a, j in jobs.items()})

    with open_view(name, [(a.name, a.run_dir) for a in arms], out) as view:
        def on_event(i: int, kind: str, text: str, what: Any) -> None:
            if kind == "started":
                view.started(i, text)
            else:
                outcomes[arms[i - 1].name] = what
                view.finished(i, "skipped" if what.holder else what.status, _progress(what))

        outcomes.update(slurm.run_arms(arms, queue, launcher, on_event, save))
    still = [a.name for a in arms if a.name not in outcomes]
    if still and runner.interrupted():
        print(f"{len(still)} SLURM job(s) left queued or running; re-run the same command to re-attach "
              f"(or scancel them: their ids are in {sweep_dir / 'sweep.json'})", file=sys.stderr, flush=True)
    return [outcomes[a.name] for a in arms if a.name in outcomes]


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
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows
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
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="arms run at once, the cores split between them (default 1)")
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
        spec.projectors = _str_list(args.projectors, "--projectors")
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
    name: str, arms: list[Arm], jobs: int = 1, dry_run: bool = False, launcher: DictConfig | None = None,
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
    slurm = launcher is not None and launcher.name == "slurm"
    at_once = ", as SLURM jobs" if slurm else f", {jobs} at a time" if jobs > 1 else ""
    figures = f"make figures NAME={name}"
    print(f"sweep {name}: {len(arms)} arm(s){at_once} -> {sweep_dir}; {figures}", flush=True)
    run_grid(arms, sweep_dir, name, jobs=jobs, launcher=launcher)
    print("\n" + summary_table(arms))
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
