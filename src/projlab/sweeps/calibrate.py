"""`make calibrate`: show that the embedded default learns and measures locality, and state its noise.

Runs the arms of `sweeps/calibration.yaml` (controls and references over several seeds, then the
projectors at matched visual tokens), each as its own process, resumable like any sweep. Then writes
`<runs>/calibration/calibration.json` and `calibration.md`: per arm and category the mean and std of
accuracy over seeds, questions per cell, steps and wall time; seeds that stayed on the "ignore the image"
plateau (final train loss at the blind control's, by the tables' rule: `analysis.tables.plateau_flags`)
flagged; and the matched-token comparison with an exact McNemar test over questions pooled across seeds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from projlab.analysis.collect import CATEGORIES, SPATIAL, collect_predictions, collect_runs
from projlab.analysis.stats import axis_steps, compare_arms, mean_std
from projlab.analysis.tables import blind_losses, plateau_flags
from projlab.cli import ArgumentParser, jobs_count
from projlab.config import run_name
from projlab.console import quiet_third_party
from projlab.errors import UserError, exit_on_user_error
from projlab.io import write_json
from projlab.markdown import table
from projlab.run_folder import config_problem
from projlab.sweeps import runner
from projlab.sweeps.executor import run_grid
from projlab.sweeps.grid import check_arm
from projlab.sweeps.launcher import split_launcher
from projlab.sweeps.runner import Arm
from projlab.sweeps.specs import CalibrationSpec, check_reserved, int_list, load_calibration_spec

CHANCE = 0.25


def plan(spec: CalibrationSpec, extra: list[str]) -> list[tuple[str, Arm]]:
    """(label, arm) for every arm and seed, each composed and validated (its M from its projector's rule)
    before anything runs; labels name the table's rows."""
    check_reserved([*spec.overrides, *extra], hint=" (the spec's name: names the sweep)")
    labelled: dict[str, list[str]] = {k: list(v) for k, v in spec.arms.items()}
    for proj in spec.matched_projectors:
        for m in spec.matched_tokens:
            labelled.setdefault(f"{proj}-m{m}", [f"projector={proj}", f"projector.num_visual_tokens={m}"])
    arms = []
    for seed in spec.seeds:
        for label, overrides in labelled.items():
            ov = [*spec.overrides, *overrides, *extra, f"seed={seed}", f"sweep={spec.name}"]
            try:
                cfg, m = check_arm(ov)
            except UserError as err:
                raise UserError(f"{label} (seed {seed}): {err}") from None
            name = run_name(cfg)
            run_dir = Path(cfg.paths.runs_root) / spec.name / name
            asked = OmegaConf.to_container(cfg, resolve=True)
            other = config_problem(run_dir, asked, "rerun=true replaces it, another name: in the spec keeps both")
            if other:  # its results would be tabulated as this arm's
                raise UserError(f"{label} (seed {seed}): {other}")
            arms.append((label, Arm(name, run_dir, tuple(ov), m, bool(cfg.rerun), asked)))
    return arms


def summarise(arms: list[tuple[str, Arm]], runs_root: Path, sweep: str) -> dict[str, Any]:
    """Per label and category: mean, std, n (questions per seed), seeds; steps, wall time; plateau flags.
    Mean and std are `analysis.stats.mean_std`'s, the plateau rule `analysis.tables`': the figures the tables print."""
    runs = collect_runs(runs_root, sweep).set_index("arm")
    label_of = {arm.name: label for label, arm in arms}
    runs = runs[runs.index.isin(label_of)]
    runs["label"] = [label_of[a] for a in runs.index]
    blind = blind_losses(runs.assign(projector=runs.label))  # the arm labelled blind is the reference
    rows: dict[str, Any] = {}
    for label, group in runs.groupby("label", sort=False):
        done = group[group.status == "completed"]
        entry: dict[str, Any] = {
            "seeds": sorted(int(s) for s in done.seed), "failed": int((group.status == "failed").sum()),
            "running": int((group.status == "running").sum()),
            "steps": int(done.steps.max()) if len(done) else None,
            "wall_time_s": float(done.wall_time_s.mean()) if len(done) else None,
            "step_time_s": float(done.step_time_s.mean()) if len(done) else None,
            "plateau_seeds": [] if label == "blind" else [seed for seed, flag in plateau_flags(group, blind) if flag],
            "categories": {},
        }
        for cat in CATEGORIES:
            col = f"acc_{cat}"
            if col in done and done[col].notna().any():
                mean, std, seeds = mean_std(done[col])  # the tables' own figures (analysis.tables.spatial_table)
                entry["categories"][cat] = {
                    "mean": mean, "std": std if seeds > 1 else None,
                    "n": int(done[f"n_{cat}"].max()), "values": [float(v) for v in done[col].dropna()],
                }
        rows[label] = entry
    for label, _ in arms:  # planned but never run (e.g. `--report` before the sweep ends): listed, not hidden
        rows.setdefault(label, {"seeds": [], "failed": 0, "running": 0, "steps": None, "wall_time_s": None,
                                "step_time_s": None, "plateau_seeds": [], "categories": {}, "not_run": True})
    return {label: rows[label] for label in dict.fromkeys(label for label, _ in arms)}  # the spec's order


def matched_tests(spec: CalibrationSpec, runs_root: Path) -> list[dict[str, Any]]:
    """Each pair of matched projectors at the same M, on the spatial categories, pooled over seeds."""
    preds = collect_predictions(runs_root, spec.name)
    if preds.empty:
        return []
    preds = preds[preds.resolution == preds.resolution.min()]
    out = []
    projs = spec.matched_projectors
    for m in spec.matched_tokens:
        at_m = preds[preds.num_visual_tokens == m]
        for i, a in enumerate(projs):
            for b in projs[i + 1 :]:
                if {a, b} <= set(at_m.projector):
                    out.append({"tokens": m, **compare_arms(at_m, a, b, SPATIAL)})
    return out


def axis_tests(spec: CalibrationSpec, runs_root: Path) -> list[dict[str, Any]]:
    """Each matched projector's steps along M (and the resolution, where the spec steps it), every category,
    pooled over seeds (`analysis.stats.axis_steps`)."""
    preds = collect_predictions(runs_root, spec.name)
    if preds.empty:
        return []
    steps = axis_steps(preds[preds.projector.isin(spec.matched_projectors)])
    return json.loads(steps.to_json(orient="records"))  # plain floats and ints, NaN as null


def _cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "-"
    std = f" ± {100 * c['std']:.1f}" if c.get("std") is not None else ""
    return f"{100 * c['mean']:.1f}{std}"


def markdown(rows: dict[str, Any], tests: list[dict[str, Any]], axes: list[dict[str, Any]] = ()) -> str:
    cats = list(CATEGORIES)
    n = next((c["n"] for r in rows.values() for c in r["categories"].values()), 0)
    body = []
    for label, r in rows.items():
        wall = f"{r['wall_time_s']:.0f}" if r["wall_time_s"] is not None else "-"
        flag = ", ".join(f"seed {s}" for s in r["plateau_seeds"]) or "-"
        fails = "".join(f" ({r[k]} {k})" for k in ("failed", "running") if r.get(k)) or (
            " (not run)" if r.get("not_run") else "")
        body.append([label, *(_cell(r["categories"].get(c)) for c in cats), f"{len(r['seeds'])}{fails}",
                     str(r["steps"] or "-"), wall, flag])
    lines = [
        f"Accuracy (%) on the test split, mean ± std over seeds; n = {n} questions per category and seed; "
        f"chance = {100 * CHANCE:.0f}%.",
        "",
        *table(["arm", *cats, "seeds", "steps", "wall s/arm", "ignores image"], body, "l" + "r" * (len(cats) + 3)),
    ]
    if tests:
        pairs = [[str(t["tokens"]), t["projector_a"], t["projector_b"], f"{100 * t['acc_a']:.1f}",
                  f"{100 * t['acc_b']:.1f}",
                  f"{100 * t['diff']:+.1f} ({100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f})",
                  f"{t['p_mcnemar']:.2g}", t["verdict"]] for t in tests]
        lines += ["", "Matched visual tokens, spatial categories, questions paired by (seed, question): "
                  "exact McNemar test, alpha = 0.05.", "",
                  *table(["M", "A", "B", "acc A", "acc B", "A - B (95% CI)", "p", "verdict"], pairs, "rllrrrr")]
    if axes:
        steps = [[t["projector"], f"M {t['low']} -> {t['high']} at {t['fixed']} px" if t["axis"] == "num_visual_tokens"
                  else f"{t['low']} -> {t['high']} px at M = {t['fixed']}", t["category"], f"{100 * t['acc_low']:.1f}",
                  f"{100 * t['acc_high']:.1f}",
                  f"{100 * t['diff']:+.1f} ({100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f})",
                  f"{t['p_mcnemar']:.2g}", t["verdict"]] for t in axes]
        lines += ["", "Each matched projector along the study's axes, every category, questions paired by (seed, "
                  "question): exact McNemar test, alpha = 0.05.", "",
                  *table(["projector", "step", "category", "acc low", "acc high", "high - low (95% CI)", "p",
                          "verdict"], steps, "lllrrrrl")]
    return "\n".join(lines) + "\n"


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    quiet_third_party()
    parser = ArgumentParser(prog="python -m projlab.sweeps.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="sweeps/calibration.yaml")
    parser.add_argument("--seeds", help="comma list replacing the spec's seeds")
    parser.add_argument("--no-matched", action="store_true", help="only the control and reference arms")
    parser.add_argument("--report", action="store_true", help="tabulate the arms already run; run nothing")
    parser.add_argument("--jobs", type=jobs_count, default=1, help="arms run at once (the cores split); auto: "
                        "one per core without a GPU, one with")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every arm (e.g. stage.max_steps=300)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    launcher, args.overrides = split_launcher(args.overrides)  # launcher=slurm: one SLURM job per arm
    spec = load_calibration_spec(args.spec)
    if args.seeds:
        spec.seeds = int_list(args.seeds, "--seeds")
    if args.no_matched:
        spec.matched = {}
    arms = plan(spec, args.overrides)
    runs_root = arms[0][1].run_dir.parent.parent
    sweep_dir = runs_root / spec.name
    outcomes = [] if args.report else run_grid(
        [a for _, a in arms], sweep_dir, spec.name, jobs=args.jobs, launcher=launcher)
    rows = summarise(arms, runs_root, spec.name)
    tests, axes = matched_tests(spec, runs_root), axis_tests(spec, runs_root)
    write_json(sweep_dir / "calibration.json", {"chance": CHANCE, "arms": rows, "matched": tests, "axes": axes})
    text = markdown(rows, tests, axes)
    (sweep_dir / "calibration.md").write_text(text)
    print(text)
    print(f"wrote {sweep_dir / 'calibration.json'} and {sweep_dir / 'calibration.md'}")
    if runner.interrupted() or any(o.status != "completed" for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
