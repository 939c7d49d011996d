"""Markdown tables of a report show labels as text: no raw HTML from a user-written option name,
study id or tag, and a `|` (or a line break) in a label does not break the table."""

from __future__ import annotations

import pandas as pd

from analysis import report, tables

HOSTILE = ["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "a|b", "x\\|y",
           "R&D", "two\nlines"]


def _cells(line: str) -> list[str]:
    """The cells of a GFM table row: split on pipes not escaped by a backslash."""
    cells, cell, i = [], "", 0
    body = line.strip()[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            cell += body[i:i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(cell.strip())
            cell = ""
        else:
            cell += body[i]
        i += 1
    return [*cells, cell.strip()]


def test_hostile_labels_are_text_in_markdown(tmp_path):
    frame = pd.DataFrame({"label": HOSTILE, "zscore_mean": [-0.5, 1.0, 0.25, 0.0, 2.0, -1.0]})
    table = tables.from_frame(frame, {"zscore_mean": tables.number(3, signed=True)},
                              best=["zscore_mean"], caption="<b>caption</b> of <script>")
    report._write_table(frame, tmp_path, "summary", table)
    text = (tmp_path / "summary.md").read_text("utf-8")
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "R&amp;D" in text
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(HOSTILE)  # header, rule, one line per row
    assert all(len(_cells(r)) == 2 for r in rows)
    labels = [_cells(r)[0] for r in rows[2:]]
    assert labels[2:] == ["a\\|b", "x\\\\\\|y", "R&amp;D", "two lines"]
    assert _cells(rows[6])[1] == "**+2.000**"  # the best cell is still marked
