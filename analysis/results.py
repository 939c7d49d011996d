"""The one shape every input becomes: runs as rows, design choices and benchmark scores as columns.

Both inputs (an MLflow store, a CSV of published numbers) are turned into a `Results`, so every
statistic, figure and table downstream is written once. Scores are held in percent (0-100)
throughout: the store logs fractions and the paper prints percents; z-scores do not care, and
tables read like the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


class AnalysisError(Exception):
    """Bad input the user can fix; the message says what was wrong and how to fix it."""


@dataclass
class Results:
    """Runs to analyse.

    `runs` has one row per run (a store's FINISHED job run, or a CSV row). Its columns:
    `run` (an id, unique), `axes` (the compared design choices, strings, each with more than one
    option), `context` (other strings that identify a configuration: runs are only compared when
    these agree), optionally `seed` and `label` (a descriptive name), and `benchmarks` (headline
    scores in percent).
    """

    runs: pd.DataFrame
    axes: list[str]
    benchmarks: list[str]
    context: list[str] = field(default_factory=list)
    seed: str | None = None
    label: str | None = None
    # axis -> options in display order (the first is the default baseline)
    option_order: dict[str, list[str]] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)  # settings shared by every run
    metric_names: dict[str, str] = field(default_factory=dict)  # benchmark -> metric it shows
    source: str = ""
    parent_run_ids: list[str] = field(default_factory=list)  # sweep parent runs of these runs
    # benchmark -> the evaluation setting its scores share ("n=8, max_examples=8, ..."; analysis/settings.py)
    eval_settings: dict[str, str] = field(default_factory=dict)
    # what was done about benchmarks scored under several settings (split into one column per setting)
    setting_notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in ["run", *self.config_columns, *self.benchmarks] if c not in self.runs]
        if missing:
            raise AnalysisError(f"internal: runs lack columns {missing}")
        if not self.benchmarks:
            raise AnalysisError("no benchmark scores to analyse")
        if self.runs.empty:
            raise AnalysisError("no runs to analyse")
        for axis in self.axes:
            present = list(dict.fromkeys(self.runs[axis]))
            order = [o for o in self.option_order.get(axis, []) if o in present]
            self.option_order[axis] = order + [o for o in sort_options(present) if o not in order]

    @property
    def config_columns(self) -> list[str]:
        """Columns whose values together name one configuration (seeds aside)."""
        return [*self.axes, *self.context]

    def options(self, axis: str) -> list[str]:
        """Options of an axis in display order."""
        return list(self.option_order[axis])


def sort_options(values: list[str]) -> list[str]:
    """Numeric order when every option is a number (epochs "1.0" < "1.5" < "2.0"), else text
    order."""
    try:
        return sorted(values, key=float)
    except (TypeError, ValueError):
        return sorted(values, key=str)


def config_labels(frame: pd.DataFrame, columns: list[str], bare: bool = True) -> pd.Series:
    """Legend text for each row built from what differs between rows.

    One differing column gives its bare value ("siglip", unless `bare` is False); several give
    "encoder=siglip, resize=crop". Columns that hold one value in `frame` are left out: they do
    not tell rows apart.
    """
    varying = [c for c in columns if frame[c].nunique(dropna=False) > 1]
    if not varying:
        return pd.Series(["all runs"] * len(frame), index=frame.index)
    if len(varying) == 1 and bare:
        return frame[varying[0]].astype(str)
    parts = [c + "=" + frame[c].astype(str) for c in varying]
    label = parts[0]
    for part in parts[1:]:
        label = label + ", " + part
    return label


def slug(name: str) -> str:
    """A file-name-safe form of an axis name ("LLM type" -> "LLM_type")."""
    out = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name)).strip("_.")
    return out or "axis"
