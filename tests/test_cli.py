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
