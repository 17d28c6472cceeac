"""Every command's bad command line is one line naming the mistake, exit 2, no usage dump or traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = [
    "projlab.sweeps.grid", "projlab.sweeps.search", "projlab.sweeps.calibrate", "projlab.analysis.report",
    "projlab.evaluation.evaluate", "projlab.evaluation.checkpoint_eval", "projlab.evaluation.score_predictions",
    "projlab.projectors", "projlab.bench",
]


@pytest.mark.parametrize("module", COMMANDS)
def test_an_unknown_flag_is_one_line(module):
    done = subprocess.run([sys.executable, "-m", module, "--no-such-flag"], capture_output=True, text=True,
                          timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "--no-such-flag" in lines[0] or "required" in lines[0], lines[0]
    assert f"python -m {module} --help" in lines[0] and "usage:" not in done.stderr


# A handful of wrongly typed values for each command: one line naming the value, exit 2. In this process
# (each command's own main), apart from train, which runs as `make train` runs it.
WRONG_TYPES = [
    ("projlab.sweeps.grid", ["--jobs", "abc"], ["--jobs", "'abc'"]),
    ("projlab.sweeps.grid", ["--tokens", "1.5"], ["--tokens", "'1.5'"]),
    ("projlab.sweeps.grid", ["--res", "112,abc"], ["--res", "'112,abc'"]),
    ("projlab.sweeps.grid", ["--seeds", "0", "--", "stage.lr=fast"], ["stage.lr='fast'"]),
    ("projlab.sweeps.search", ["{spec}", "--workers", "x"], ["--workers", "'x'"]),
    ("projlab.sweeps.search", ["{spec}", "--n-trials", "0"], ["--n-trials", "0"]),
    ("projlab.sweeps.search", ["{spec}", "--", "stage.max_steps=abc"], ["stage.max_steps='abc'"]),
    ("projlab.sweeps.calibrate", ["--jobs", "-1"], ["--jobs", "-1"]),
    ("projlab.sweeps.calibrate", ["--seeds", "a,b"], ["--seeds", "'a,b'"]),
    ("projlab.sweeps.calibrate", ["--seeds", "0", "stage.max_steps=1.5"], ["stage.max_steps=1.5"]),
    ("projlab.analysis.report", ["--sweep", "../x"], ["--sweep", "'../x'"]),
    ("projlab.evaluation.evaluate", ["--run", "x", "--bench", "spatial", "--limit", "x"], ["--limit", "'x'"]),
    ("projlab.evaluation.checkpoint_eval", ["{plain}"], ["plain", "not a run folder"]),
    ("projlab.evaluation.score_predictions", ["--bench", "7", "--data", "{plain}", "--predictions", "{plain}"],
     ["'7'"]),
    ("projlab.projectors.__main__", ["--vision-dim", "abc"], ["--vision-dim", "'abc'"]),
    ("projlab.projectors.__main__", ["--grid", "0x3"], ["--grid", "'0x3'"]),
    ("projlab.bench.__main__", ["--repeats", "x"], ["--repeats", "'x'"]),
    ("projlab.bench.__main__", ["--peak-tflops", "abc"], ["--peak-tflops", "'abc'"]),
    ("projlab.analysis.feature_probe", ["seed=xyz", "data.train=many"], ["seed='xyz'", "data.train='many'"]),
]


@pytest.mark.parametrize("module, argv, words", WRONG_TYPES)
def test_wrong_types_are_one_line_for_every_command(module, argv, words, runs_dir, tmp_path, capsys):
    import importlib

    (tmp_path / "plain").write_text("a file\n")
    spec = tmp_path / "search.yaml"
    spec.write_text("study: s\nn_trials: 1\nspace: {stage.lr: {type: float, low: 1.0e-4, high: 1.0e-3}}\n")
    argv = [a.format(spec=spec, plain=tmp_path / "plain") for a in argv]
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert all(w in err[0] for w in words), err[0]
    assert not runs_dir.exists()  # nothing written under the runs root


def test_train_names_every_wrongly_typed_value_in_one_line(runs_dir):
    bad = ["seed=xyz", "stage.lr=fast", "stage.max_steps=1.5", "data.scramble=maybe", "trainer.devices=two",
           "vision.resolution=[112]"]
    done = subprocess.run([sys.executable, "-m", "projlab.train", *bad], capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for value in ("seed='xyz'", "stage.lr='fast'", "stage.max_steps=1.5", "data.scramble='maybe'",
                  "trainer.devices='two'", "vision.resolution=[112]"):
        assert value in lines[0], lines[0]
    assert not runs_dir.exists()
