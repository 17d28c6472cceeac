"""A table as the paper prints it, written three ways: Markdown (to read), LaTeX (to paste), CSV (the numbers).

The display frame holds formatted strings; `bold` marks cells to emphasise (the best of a column); `groups`
names a header over consecutive columns (e.g. "spatial" over the spatial categories). The CSV holds the
numbers behind the display, unformatted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from projlab import markdown

DASH = "—"


@dataclass
class Table:
    name: str
    caption: str
    display: pd.DataFrame
    data: pd.DataFrame
    bold: pd.DataFrame | None = None
    groups: list[tuple[str, list[str]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def is_bold(self, i: int, col: str) -> bool:
        return self.bold is not None and col in self.bold and bool(self.bold[col].iloc[i])


# ---- number formatting --------------------------------------------------------------------------
def missing(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def pm(mean: float, std: float, scale: float = 100.0, digits: int = 1) -> str:
    """Format "mean ± std", scaled (accuracy in %); the std is left out for a single seed."""
    if missing(mean):
        return DASH
    text = f"{mean * scale:.{digits}f}"
    return text if missing(std) else f"{text} ± {std * scale:.{digits}f}"


def count(x, digits: int = 1) -> str:
    """12,345 -> '12.3 k'; a FLOP or parameter count readable at a glance."""
    if missing(x):
        return DASH
    x = float(x)
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.{digits}f} {unit}"
    return f"{x:.0f}"


def num(x, digits: int = 3) -> str:
    """A float to `digits` significant digits."""
    return DASH if missing(x) else f"{float(x):.{digits}g}"


# ---- writers ------------------------------------------------------------------------------------
def _group_row(table: Table, cell) -> list[str] | None:
    if not table.groups:
        return None
    where = {c: name for name, cols in table.groups for c in cols}
    return [cell(where.get(c, "")) for c in table.display.columns]


def to_markdown(table: Table) -> str:
    cols = list(table.display.columns)
    header = cols
    groups = _group_row(table, lambda g: g)
    if groups:
        header = [f"{g}: {c}" if g else c for g, c in zip(groups, cols)]
    rows = []
    for i in range(len(table.display)):
        texts = {c: str(table.display[c].iloc[i]) for c in cols}
        rows.append([f"**{texts[c]}**" if table.is_bold(i, c) else texts[c] for c in cols])
    lines = [f"**{table.name}.** {table.caption}", ""] + markdown.table(header, rows)
    lines += [""] + [f"Note: {n}" for n in table.notes]
    return "\n".join(lines).rstrip() + "\n"


_TEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    out = "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))
    for plain, tex in (("±", r"$\pm$"), ("—", "--"), ("×", r"$\times$"), ("–", "--"), ("−", "$-$")):
        out = out.replace(plain, tex)
    return out


def to_latex(table: Table) -> str:
    cols = list(table.display.columns)
    lines = [r"% " + table.name + " (written by projlab.analysis; needs \\usepackage{booktabs})",
             r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{" + "l" * min(2, len(cols)) + "r" * max(0, len(cols) - 2) + "}", r"\toprule"]
    if table.groups:
        spans, rules, i = [], [], 0
        while i < len(cols):
            name = next((g for g, cs in table.groups if cols[i] in cs), "")
            j = i
            while j + 1 < len(cols) and name and cols[j + 1] in dict(table.groups)[name]:
                j += 1
            width = j - i + 1
            spans.append(f"\\multicolumn{{{width}}}{{c}}{{{tex_escape(name)}}}" if name else "")
            if name:
                rules.append(f"\\cmidrule(lr){{{i + 1}-{j + 1}}}")
            i = j + 1
        lines += [" & ".join(spans) + r" \\", " ".join(rules)]
    lines.append(" & ".join(tex_escape(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for i in range(len(table.display)):
        cells = []
        for c in cols:
            text = tex_escape(table.display[c].iloc[i])
            cells.append(f"\\textbf{{{text}}}" if table.is_bold(i, c) else text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    caption = table.caption + "".join(f" {n}" for n in table.notes)
    lines += [f"\\caption{{{tex_escape(caption)}}}", f"\\label{{tab:{table.name}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(table: Table, out_dir: str | Path, markdown: str | None = None) -> list[Path]:
    """`<out_dir>/<name>.md`, `.tex` and `.csv` (`markdown`: the table's, if already rendered); returns the
    three paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{table.name}.{ext}" for ext in ("md", "tex", "csv")]
    paths[0].write_text(to_markdown(table) if markdown is None else markdown)
    paths[1].write_text(to_latex(table))
    table.data.to_csv(paths[2], index=False)
    return paths


def publish(table: Table, out_dir: str | Path) -> str:
    """What a notebook does with each table: write its three files (printing their paths) and return its
    Markdown to display."""
    markdown = to_markdown(table)
    for path in write_table(table, out_dir, markdown):
        print(path)
    return markdown
