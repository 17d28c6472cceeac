"""`python -m projlab.bench.versus REV [--tokens 16,144] [--repeats 3] [--steps 300] [--threads 2] [--out DIR]`

The recipe's training step of this checkout against the same step at another commit, side by side on one
machine: each commit's own defaults (precision, attention, data), the recipe's arm (c_abstractor, its batch),
run as `python -m projlab.train` in its own tree, one process at a time, old and new interleaved so that a
change in the machine's load falls on both. The figure is each run's median step (`efficiency.step_time_s`
of its results.json); per M: min / median / max over the repeats and the ratio of the medians.

REV is checked out once as a git worktree under .cache/projlab/versus/<sha>/, where it pre-trains its own
tower and caches its own features on its first run (an untimed warm-up run per tree comes first, so that
neither cost falls in a timed run). Writes <out>/versus.json (atomic) and <out>/versus.md.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from projlab.bench.report import environment
from projlab.cli import ArgumentParser, positive_int
from projlab.errors import UserError, exit_on_user_error
from projlab.io import atomic_write, write_json
from projlab.markdown import table

ROOT = Path(__file__).resolve().parents[3]  # the checkout this module belongs to
ARM = ["projector=c_abstractor", "data.val=12", "data.test=12", "sweep=versus"]  # each run's folder is moved aside


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise UserError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1] if done.stderr else 'failed'}")
    return done.stdout.strip()


def worktree(rev: str) -> tuple[Path, str]:
    """The tree of `rev` (a worktree under the cache, made once) and its full sha."""
    try:
        sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    except UserError:
        raise UserError(f"REV {rev!r} is not a commit of this repository; give a sha, tag or branch") from None
    tree = ROOT / ".cache" / "projlab" / "versus" / sha[:12]
    if not (tree / "src").is_dir():
        _git("worktree", "add", "--detach", str(tree), sha)
    return tree, sha


def step_time(tree: Path, tokens: int, steps: int, threads: int, runs: Path) -> float:
    """One training run of the recipe's arm in `tree`; its median step in seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "RUNS": str(runs), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    overrides = [*ARM, f"projector.num_visual_tokens={tokens}", f"stage.max_steps={steps}"]
    done = subprocess.run([sys.executable, "-m", "projlab.train", *overrides], cwd=tree, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"training in {tree} failed:\n{tail}")
    found = sorted(runs.glob(f"versus/c_abstractor-m{tokens}-*/results.json"))
    if len(found) != 1:
        raise RuntimeError(f"expected one results.json for M={tokens} under {runs}, found {len(found)}")
    result = json.loads(found[0].read_text())
    found[0].parent.rename(runs / f"done-{len(list(runs.glob('done-*')))}")  # the next run starts clean
    return float(result["efficiency"]["step_time_s"])


def spread(xs: list[float]) -> dict:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "runs": xs}


def markdown(res: dict) -> str:
    env = res["environment"]
    rows = []
    for m, cell in res["tokens"].items():
        for label in ("old", "new"):
            s = cell[label]
            rows.append([m, f"{label} ({res[label + '_rev'][:7]})", f"{s['min'] * 1e3:.0f}",
                         f"{s['median'] * 1e3:.0f}", f"{s['max'] * 1e3:.0f}",
                         f"{cell['speedup']:.2f}x" if label == "new" else ""])
    return "\n".join([
        f"# The recipe's step: {res['new_rev'][:7]} against {res['old_rev'][:7]}", "",
        f"Machine: {env['cpu']} ({', '.join(env['cpu_flags'])}), {env['cores']} cores; {res['threads']} "
        f"thread(s) per run, one run at a time, old and new interleaved; {res['repeats']} runs of "
        f"{res['steps']} steps per commit and M, each commit's own defaults (c_abstractor, the recipe's batch).",
        "", "ms per step: the median step of each run; min / median / max over the runs; speed-up: old median "
        "over new median.", "",
        *table(["M", "commit", "min", "median", "max", "speed-up"], rows, align="llrrrr"), ""])


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="python -m projlab.bench.versus", description=__doc__.split("\n\n")[1])
    p.add_argument("rev", help="the commit to compare against (sha, tag or branch)")
    p.add_argument("--tokens", default="16,144", help="comma-separated M (default 16,144)")
    p.add_argument("--repeats", type=positive_int, default=3, help="runs per commit and M (default 3)")
    p.add_argument("--steps", type=positive_int, default=300, help="optimiser steps per run (default 300)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads per run (default 2)")
    p.add_argument("--out", default="bench/versus", help="folder for versus.json and versus.md")
    a = p.parse_args(argv)
    try:
        tokens = [int(t) for t in a.tokens.split(",")]
    except ValueError:
        raise UserError(f"--tokens {a.tokens!r} is not a comma-separated list of integers") from None
    old_tree, old_sha = worktree(a.rev)
    trees = {"old": old_tree, "new": ROOT}
    res = {"old_rev": old_sha, "new_rev": _git("rev-parse", "HEAD"), "new_dirty": bool(_git("status", "--porcelain")),
           "threads": a.threads, "repeats": a.repeats, "steps": a.steps,
           "environment": environment(torch.device("cpu")), "tokens": {}}
    times: dict[int, dict[str, list[float]]] = {m: {"old": [], "new": []} for m in tokens}
    with tempfile.TemporaryDirectory(prefix="versus-") as tmp:
        for label, tree in trees.items():  # warm-up: the tower, the feature cache, the imports
            print(f"warm-up {label} ({tree})", flush=True)
            step_time(tree, tokens[0], 5, a.threads, Path(tmp))
        for r in range(a.repeats):
            for m in tokens:
                for label, tree in trees.items():
                    t = step_time(tree, m, a.steps, a.threads, Path(tmp))
                    times[m][label].append(t)
                    print(f"run {r + 1}/{a.repeats} M={m} {label}: {t * 1e3:.1f} ms/step", flush=True)
    for m in tokens:
        old, new = spread(times[m]["old"]), spread(times[m]["new"])
        res["tokens"][str(m)] = {"old": old, "new": new, "speedup": old["median"] / new["median"]}
    out = Path(a.out)
    write_json(out / "versus.json", res)
    atomic_write(out / "versus.md", lambda tmp: tmp.write_text(markdown(res)))
    print(markdown(res))


if __name__ == "__main__":
    main()
