"""The one Markdown table writer: its grid, its alignment row, and a "|" inside a cell."""
from __future__ import annotations

import pandas as pd
import pytest

from projlab.analysis.render import Table, to_markdown
from projlab.markdown import table


def test_the_grid_aligns_numbers_right_and_escapes_a_pipe():
    lines = table(["arm", "ms", "note"], [["linear", "1.5", "a|b"]], "lr")
    assert lines == ["| arm | ms | note |", "|---|---:|---|", "| linear | 1.5 | a\\|b |"]


def test_an_unknown_alignment_is_refused():
    with pytest.raises(ValueError, match="align='lc'"):
        table(["a", "b"], [], "lc")


def test_an_analysis_table_prints_through_the_same_grid():
    display = pd.DataFrame({"arm": ["linear", "c-abs"], "acc": ["50.0", "61.2"]})
    bold = pd.DataFrame({"arm": [False, False], "acc": [False, True]})
    t = Table("t1", "Accuracy.", display, display, bold=bold, groups=[("spatial", ["acc"])], notes=["one seed"])
    assert to_markdown(t).splitlines() == [
        "**t1.** Accuracy.", "", *table(["arm", "spatial: acc"], [["linear", "50.0"], ["c-abs", "**61.2**"]]),
        "", "Note: one seed"]
