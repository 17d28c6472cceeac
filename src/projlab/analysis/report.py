"""Rebuild every table and figure of a sweep by executing the analysis notebooks headless.

    python -m projlab.analysis.report [--sweep NAME] [--runs DIR] [--out DIR]

Each `analysis/*.py` (jupytext percent format) becomes a notebook, gets this run's parameters in a cell
injected after its "parameters" cell (as papermill does), is executed with nbclient on a kernel of this very
Python, and is saved executed under `<out>/notebooks/`. Tables land in `<out>/tables/`, figures in
`<out>/figures/`; the last lines printed are their paths. Exit code: 0 if every notebook ran, 1 if one
failed (its partly executed notebook is saved), 2 for a usage mistake or a sweep without results.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from projlab.analysis.collect import run_dirs
from projlab.results import read_results
from projlab.cli import ArgumentParser
from projlab.errors import UserError, exit_on_user_error

NOTEBOOKS = Path(__file__).resolve().parents[3] / "analysis"
KERNEL = "python3"
OUTPUT_KINDS = {"tables": (".md", ".tex", ".csv"), "figures": (".png", ".pdf")}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m projlab.analysis.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--sweep", default="default", help="sweep folder under the runs root (default: default)")
    p.add_argument("--runs", default=None, help="runs root (default: env RUNS, else runs/)")
    p.add_argument("--out", default=None, help="output folder (default: reports/<sweep>/)")
    p.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the jupytext notebooks (default analysis/)")
    return p.parse_args(argv)


@contextlib.contextmanager
def this_python_kernel() -> Iterator[None]:
    """A private kernelspec `python3` that runs this interpreter (the venv with projlab), first on
    JUPYTER_PATH while the notebooks run: whatever kernels the machine has, they run where projlab is."""
    previous = os.environ.get("JUPYTER_PATH")
    with tempfile.TemporaryDirectory(prefix="projlab-kernel-") as root:
        spec = Path(root) / "kernels" / KERNEL
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                     "--IPKernelApp.log_level=ERROR"],
            "display_name": "Python 3 (projlab)", "language": "python",
        }))
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [root, previous]))
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


def with_parameters(nb, params: dict):
    """Insert a cell assigning `params` right after the cell tagged "parameters" (first cell if none)."""
    import nbformat

    source = "# Parameters injected by projlab.analysis.report\n" + "".join(
        f"{k} = {v!r}\n" for k, v in params.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    nb.cells.insert(tagged[0] + 1 if tagged else 0, cell)
    return nb


def execute(path: Path, params: dict, out_dir: Path) -> str | None:
    """Execute one jupytext notebook; save it under `out_dir`; return None, or the error line if it failed."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = with_parameters(jupytext.read(path), params)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    client = NotebookClient(nb, timeout=600, kernel_name=KERNEL, resources={"metadata": {"path": str(path.parent)}})
    error = None
    try:
        client.execute()
    except CellExecutionError as err:
        error = f"{err.ename}: {err.evalue}".splitlines()[0]
    except Exception as err:  # a kernel that dies or never starts
        error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / f"{path.stem}.ipynb")
    return error


def written_since(out: Path, t0: float) -> dict[str, list[Path]]:
    """Tables and figures under `out` written by this run (older files from earlier runs are left out)."""
    found = {}
    for kind, suffixes in OUTPUT_KINDS.items():
        folder = out / kind
        files = folder.iterdir() if folder.is_dir() else []
        found[kind] = sorted(p for p in files if p.suffix in suffixes and p.stat().st_mtime >= t0)
    return found


def report(sweep: str, runs_root: Path, out: Path, notebooks: Path) -> tuple[dict[str, list[Path]], list[str]]:
    dirs = run_dirs(runs_root, sweep)
    if not dirs:
        raise UserError(f"no results under {runs_root / sweep}; run make sweep first")
    for d in dirs:  # a damaged results.json is named here, in the terminal (the tables count it as failed)
        read_results(d)
    sources = sorted(notebooks.glob("[0-9]*.py"))
    if not sources:
        raise UserError(f"no analysis notebooks (NN_name.py) in {notebooks}")
    params = {"runs_root": str(runs_root.resolve()), "sweep": sweep, "out_dir": str(out.resolve())}
    t0 = time.time() - 1.0  # file times may be coarser than the clock
    failures = []
    with this_python_kernel():
        for path in sources:
            started = time.perf_counter()
            print(f"executing {path.name} ... ", end="", flush=True)
            error = execute(path, params, out / "notebooks")
            print(f"{'failed' if error else 'done'} ({time.perf_counter() - started:.1f} s)", flush=True)
            if error:
                failures.append(f"{path.name}: {error}")
    return written_since(out, t0), failures


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.sweep or "/" in args.sweep or args.sweep.startswith("."):
        raise UserError(f"--sweep {args.sweep!r}: give a plain folder name")
    runs_root = Path(args.runs or os.environ.get("RUNS") or "runs")
    out = Path(args.out) if args.out else Path("reports") / args.sweep
    written, failures = report(args.sweep, runs_root, out, Path(args.notebooks))
    print(f"\nexecuted notebooks in {out / 'notebooks'}")
    for kind, paths in written.items():
        print(f"{len(paths)} {kind}:")
        for p in paths:
            print(f"  {p}")
    for line in failures:
        print(f"error: notebook {line} (see {out / 'notebooks'})", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
