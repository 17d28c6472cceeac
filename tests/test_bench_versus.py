"""The side-by-side step timer: its report and its one-line errors (a real comparison pre-trains a second
tower, minutes of work: `python -m projlab.bench.versus <rev>` is run by hand and its figures kept in
docs/speed.md)."""
from __future__ import annotations

import pytest

from projlab.bench.versus import main, markdown, spread


def test_spread_and_report_name_the_machine_and_the_speedup():
    old, new = spread([0.30, 0.20, 0.25]), spread([0.11, 0.10, 0.12])
    assert (old["min"], old["median"], old["max"]) == (0.20, 0.25, 0.30)
    res = {"old_rev": "a" * 40, "new_rev": "b" * 40, "threads": 2, "repeats": 3, "steps": 300,
           "environment": {"cpu": "Some CPU", "cpu_flags": ["avx512_bf16"], "cores": 2},
           "tokens": {"144": {"old": old, "new": new, "speedup": old["median"] / new["median"]}}}
    md = markdown(res)
    assert "Some CPU (avx512_bf16), 2 cores" in md
    assert "| 144 | new (bbbbbbb) | 100 | 110 | 120 | 2.27x |" in md
    assert "| 144 | old (aaaaaaa) | 200 | 250 | 300 |  |" in md


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["no-such-rev"], "REV 'no-such-rev' is not a commit"),
        (["HEAD", "--tokens", "16,x"], "--tokens '16,x'"),
        (["HEAD", "--repeats", "0"], "--repeats: 0 must be at least 1"),
        (["HEAD", "--steps", "-3"], "--steps: -3 must be at least 1"),
        (["HEAD", "--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line(argv, fragment, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err
    assert not any(tmp_path.iterdir())  # nothing written
