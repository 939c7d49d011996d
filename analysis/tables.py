"""Tables in Markdown, LaTeX and HTML, with the best value of each score column marked.

A `Table` is formatted text plus a mask of best cells; each renderer only decides how a cell and
its mark look (Markdown `**x**`, LaTeX `\\textbf{x}`, HTML `<b>x</b>`).
"""

from __future__ import annotations

import html as _html
import math
import re
from dataclasses import dataclass
from typing import Callable

import pandas as pd

Formatter = Callable[[object], str]
DASH = "–"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    best: list[list[bool]]
    numeric: list[bool]  # right-align these columns
    caption: str = ""


def number(decimals: int = 2, signed: bool = False) -> Formatter:
    """Fixed-point formatter; NaN shows as a dash."""
    spec = ("+" if signed else "") + f".{decimals}f"
    tiny = 0.5 * 10.0 ** -decimals  # shown as 0, not "-0.000"

    def fmt(v: object) -> str:
        if _missing(v):
            return DASH
        x = float(v)
        return format(0.0 if abs(x) < tiny else x, spec)

    return fmt


def pvalue(v: object) -> str:
    """p-values: three significant digits, tiny ones as "<0.001"."""
    if _missing(v):
        return DASH
    return "<0.001" if float(v) < 1e-3 else f"{float(v):.3g}"


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def from_frame(frame: pd.DataFrame, formats: dict[str, Formatter] | None = None,
               best: list[str] | None = None, caption: str = "",
               headers: dict[str, str] | None = None,
               values: pd.DataFrame | None = None) -> Table:
    """Format `frame`; in each `best` column the highest value(s) are marked (ties all).

    `values` (same rows) holds the numbers that decide "best" when `frame` shows text built
    from them, such as "62.28 ± 0.41".
    """
    formats, best, headers = formats or {}, best or [], headers or {}
    values = frame if values is None else values
    cols = list(frame.columns)
    tops = {c: values[c].max() for c in best if c in values and values[c].notna().any()}
    rows, marks = [], []
    for i, (_, rec) in enumerate(frame.iterrows()):
        rows.append([formats.get(c, _plain)(rec[c]) for c in cols])
        marks.append([c in tops and not _missing(values[c].iloc[i])
                      and values[c].iloc[i] >= tops[c] - 1e-9 for c in cols])
    numeric = [pd.api.types.is_numeric_dtype(values[c] if c in values else frame[c])
               for c in cols]
    return Table([headers.get(c, str(c)) for c in cols], rows, marks, numeric, caption)


def _plain(v: object) -> str:
    if _missing(v):
        return DASH
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# A spreadsheet runs a cell starting with one of these as a formula (OWASP, "CSV injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _inert(v: object) -> object:
    if (isinstance(v, str) and v.startswith(FORMULA_START)
            and not _NUMBER.fullmatch(v)):  # "-0.5" is a number, not a formula
        return "'" + v
    return v


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` for a CSV file: each text cell (and column name) that a spreadsheet would run as a
    formula gets a leading single quote, as OWASP recommends, since labels come from user-written
    option names, study ids and tags (`=HYPERLINK(...)` -> `'=HYPERLINK(...)`). Numeric columns,
    and text that is a number such as "-0.5", are written unchanged."""
    out = frame.copy()
    for c in out.columns:
        if not pd.api.types.is_numeric_dtype(out[c]):
            out[c] = out[c].map(_inert)
    return out.rename(columns=_inert)


def markdown_cell(text: str) -> str:
    """`text` as one Markdown table cell: no raw HTML from a label (`<`, `>`, `&` as entities, so
    `<script>` shows as text), `\\` and `|` escaped so it cannot end the cell, line breaks as
    spaces so it cannot end the row."""
    text = _html.escape(text, quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return re.sub(r"[\r\n]+", " ", text)


def markdown(table: Table) -> str:
    """GitHub-flavoured Markdown; best cells in bold; labels escaped (`markdown_cell`)."""
    lines = ["| " + " | ".join(markdown_cell(h) for h in table.header) + " |",
             "|" + "|".join("---:" if n else "---" for n in table.numeric) + "|"]
    for row, marks in zip(table.rows, table.best):
        cells = [f"**{markdown_cell(c)}**" if m else markdown_cell(c) for c, m in zip(row, marks)]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    caption = _html.escape(table.caption, quote=False)
    return (f"{caption}\n\n" if caption else "") + text


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace(DASH, "--")


def latex(table: Table) -> str:
    """A booktabs `table` environment; best cells in bold."""
    spec = "".join("r" if n else "l" for n in table.numeric)
    body = [" & ".join(latex_escape(h) for h in table.header) + r" \\", r"\midrule"]
    for row, marks in zip(table.rows, table.best):
        cells = [r"\textbf{" + latex_escape(c) + "}" if m else latex_escape(c)
                 for c, m in zip(row, marks)]
        body.append(" & ".join(cells) + r" \\")
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if table.caption:
        lines.append(r"\caption{" + latex_escape(table.caption) + "}")
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule", *body, r"\bottomrule",
              r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def html(table: Table) -> str:
    """An HTML table; best cells in bold."""
    def cell(tag: str, text: str, num: bool, mark: bool = False) -> str:
        inner = f"<b>{_html.escape(text)}</b>" if mark else _html.escape(text)
        return f'<{tag} class="{"num" if num else "txt"}">{inner}</{tag}>'

    head = "".join(cell("th", h, n) for h, n in zip(table.header, table.numeric))
    body = "".join(
        "<tr>" + "".join(cell("td", c, n, m) for c, n, m in zip(row, table.numeric, marks))
        + "</tr>" for row, marks in zip(table.rows, table.best))
    cap = f"<caption>{_html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
