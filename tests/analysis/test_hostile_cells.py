"""CSV tables of a report neutralise cells a spreadsheet would run as formulas (CSV injection):
labels come from user-written option names, study ids and tags."""

from __future__ import annotations

import csv

import pandas as pd

from analysis import report, tables

HOSTILE = ['=HYPERLINK("http://x")', "+cmd", "@SUM(A1)", "-2+3+cmd|' /C calc'!A0", "\t=1",
           "\r=1"]


def test_hostile_labels_are_quoted_and_numbers_kept(tmp_path):
    frame = pd.DataFrame({"label": [*HOSTILE, "plain", "-0.5"],
                          "zscore_mean": [-0.5, 1.25, -1e-3, 0.0, 2.0, -3.0, 0.5, -7.0],
                          "n_runs": [1, 2, 3, 4, 5, 6, 7, -8]})
    table = tables.from_frame(frame)
    report._write_table(frame, tmp_path, "summary", table)
    with open(tmp_path / "summary.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["label", "zscore_mean", "n_runs"] and len(rows) == 1 + len(frame)
    labels = [r[0] for r in rows[1:]]
    assert labels == ["'" + h for h in HOSTILE] + ["plain", "-0.5"]  # "-0.5" is a number
    assert [float(r[1]) for r in rows[1:]] == frame["zscore_mean"].tolist()
    assert [r[1] for r in rows[1:]][:3] == ["-0.5", "1.25", "-0.001"]
    assert [int(r[2]) for r in rows[1:]] == frame["n_runs"].tolist()


def test_hostile_column_names_are_quoted_too():
    frame = pd.DataFrame({"=cmd": ["a"], "score": [-1.0]})
    safe = tables.spreadsheet_safe(frame)
    assert list(safe.columns) == ["'=cmd", "score"] and safe["score"].tolist() == [-1.0]
    assert list(frame.columns) == ["=cmd", "score"]  # the caller's frame is left as it was
