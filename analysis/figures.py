"""Publication figures: radar charts per axis and grouped bars of paired deltas.

Radar spokes are on a stated scale anchored at a floor that means something (`spoke_range`), with
each polygon's confidence band and the spokes on which no option differs marked: a radar must not
turn a 1-point spread into a full radius.

Figures are drawn on bare `Figure` objects with the Agg canvas (no pyplot state, no display)
and saved as PNG and PDF (TrueType fonts embedded, so text stays editable and sharp).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.floors import Floor
from analysis.stats import CI_SUFFIX

STYLE = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 9, "axes.titlesize": 10,
         "legend.fontsize": 8, "savefig.dpi": 200}
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
INNER = 0.15  # radius of a spoke's lower anchor (the floor): what lies below it stays visible
SCALES = ("floor", "percent", "minmax")  # radar spoke scales (see `spoke_range`)
GREY = "0.55"


def _colors(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _save(fig: Figure, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    FigureCanvasAgg(fig)  # Agg renders PNG; savefig picks the PDF backend for .pdf itself
    paths = []
    for fmt in formats:
        path = stem.with_suffix("." + fmt)
        meta = {"CreationDate": None} if fmt == "pdf" else None  # reproducible PDF bytes
        fig.savefig(path, format=fmt, bbox_inches="tight", metadata=meta)
        paths.append(path)
    return paths


def spoke_range(scores: pd.DataFrame, scale: str = "floor",
                floors: Mapping[str, Floor] | None = None) -> tuple[pd.Series, pd.Series]:
    """(lower, upper) anchor of each spoke, in the scores' units.

    - "floor" (default): from the benchmark's floor (analysis/floors.py: blind control, chance, or 0)
      to the best polygon shown, so a radius is the share of the best option's gain over "nothing
      learned"; a spoke whose best does not clear its floor gets one point of range.
    - "percent": 0 to 100 on every spoke.
    - "minmax": the lowest to the highest polygon shown (on request only: it stretches any
      difference, noise included, over the whole radius).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown radar scale {scale!r}; choose one of {', '.join(SCALES)}")
    cols = list(scores.columns)
    if scale == "percent":
        return pd.Series(0.0, index=cols), pd.Series(100.0, index=cols)
    hi = scores.max()
    if scale == "minmax":
        lo = scores.min()
        return lo, hi.where(hi - lo > 1e-9, lo + 1.0)
    lo = pd.Series({b: (floors or {}).get(b, Floor(0.0, "zero")).value for b in cols})
    return lo, hi.where(hi - lo > 1e-9, lo + 1.0)


def radii(scores: pd.DataFrame, lo: pd.Series, hi: pd.Series) -> pd.DataFrame:
    """Scores as radii: the lower anchor at INNER, the upper at 1; clipped to [0, 1.2]."""
    return (INNER + (1 - INNER) * (scores - lo) / (hi - lo)).clip(0.0, 1.2)


def radar(table: pd.DataFrame, labels: list[str], benchmarks: list[str], title: str,
          stem: Path, legend_title: str = "", formats: tuple[str, ...] = ("png", "pdf"), *,
          floors: Mapping[str, Floor] | None = None, scale: str = "floor",
          undecided: Sequence[str] = (), decided_by: str = "", ci_level: float = 0.95,
          ) -> list[Path]:
    """One polygon per row of `table`, one spoke per benchmark, on the spoke scale `scale`.

    Bands around a polygon are its `<benchmark>_ci` confidence interval where `table` has one.
    Spokes in `undecided` (no option differs there at the report's level, per `decided_by`) are
    grey, dotted and labelled "not significant". The scale is stated on each spoke and in a note."""
    scores = table[benchmarks].astype(float)
    lo, hi = spoke_range(scores, scale, floors)
    r = radii(scores, lo, hi)
    angles = np.linspace(0, 2 * math.pi, len(benchmarks), endpoint=False)
    closed = np.append(angles, angles[0])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.4, 6.0))
        ax = fig.add_subplot(projection="polar")
        ax.set_theta_offset(math.pi / 2)
        ax.set_theta_direction(-1)
        for i, color in enumerate(_colors(len(r))):
            values = np.append(r.iloc[i].to_numpy(), r.iloc[i].to_numpy()[0])
            ax.plot(closed, values, color=color, lw=1.6, ls=LINESTYLES[i % 4],
                    marker=MARKERS[i % len(MARKERS)], ms=3.5, label=labels[i], zorder=3)
            ci = table.iloc[i][[b + CI_SUFFIX for b in benchmarks]].to_numpy(float) \
                if all(b + CI_SUFFIX in table for b in benchmarks) else None
            if ci is not None and np.isfinite(ci).any():
                band = np.nan_to_num(ci)
                low = radii(pd.DataFrame([scores.iloc[i] - band]), lo, hi).iloc[0].to_numpy()
                high = radii(pd.DataFrame([scores.iloc[i] + band]), lo, hi).iloc[0].to_numpy()
                ax.fill_between(closed, np.append(low, low[0]), np.append(high, high[0]),
                                color=color, alpha=0.18, lw=0, zorder=2)
            else:
                ax.fill(closed, np.nan_to_num(values), color=color, alpha=0.05)
        ring = np.linspace(0, 2 * math.pi, 200)
        if scale != "percent":
            ax.plot(ring, np.full_like(ring, INNER), color="0.35", lw=0.8, ls="--", zorder=1)
        ax.set_xticks(angles)
        ax.set_xticklabels([_spoke_label(b, lo[b], hi[b], scale, floors, b in undecided)
                            for b in benchmarks], fontsize=7.5)
        for tick, b in zip(ax.get_xticklabels(), benchmarks):
            if b in undecided:
                tick.set_color(GREY)
                tick.set_fontstyle("italic")
        for angle, b in zip(angles, benchmarks):
            if b in undecided:
                ax.plot([angle, angle], [0, 1.2], color=GREY, lw=1.0, ls=":", zorder=1)
        ax.tick_params(axis="x", pad=16)  # keep spoke labels clear of the outer ring
        ax.set_ylim(0, 1.2)
        ax.set_yticks([INNER, (1 + INNER) / 2, 1.0])
        ax.set_yticklabels([])
        ax.set_title(title + (" [min–max scaled]" if scale == "minmax" else ""), pad=24,
                     color="firebrick" if scale == "minmax" else "black")
        ax.legend(title=legend_title or None, loc="upper left", bbox_to_anchor=(1.14, 1.02),
                  frameon=False)
        fig.text(0.02, -0.04, "\n".join(textwrap.wrap(
            _scale_note(scale, ci_level, bool(undecided), decided_by), 150)), fontsize=6.5,
            color="0.35", va="top")
        return _save(fig, stem, formats)


def _spoke_label(benchmark: str, lo: float, hi: float, scale: str,
                 floors: Mapping[str, Floor] | None, undecided: bool) -> str:
    tail = "\nnot significant" if undecided else ""
    if scale == "percent":
        return f"{benchmark}\n0–100 %{tail}"
    if scale == "minmax":
        return f"{benchmark}\nmin {lo:.1f} – max {hi:.1f}{tail}"
    kind = (floors or {}).get(benchmark, Floor(0.0, "zero")).kind
    start = "0" if kind == "zero" else f"{kind} {lo:.1f}"
    return f"{benchmark}\n{start} → best {hi:.1f}{tail}"


def _scale_note(scale: str, level: float, undecided: bool, decided_by: str) -> str:
    if scale == "floor":
        text = ("Each spoke runs from its floor (dashed ring: the blind control where the runs have "
                "one, else chance for closed-set tasks, else 0) to the best polygon (outer ring); "
                "scores in %, anchors on each label.")
    elif scale == "percent":
        text = "Every spoke 0–100 %."
    else:
        text = ("Each spoke scaled min–max over the polygons shown (requested): any difference, "
                "noise included, fills the radius; ranges on each label.")
    text += f" Bands: {level:.0%} confidence intervals over seeds."
    if undecided:
        text += (f" Grey dotted spokes, \"not significant\": no option differs there at the report's "
                 f"level ({decided_by}).")
    return text


def deltas(comparisons: pd.DataFrame, benchmarks: list[str], baseline: str, title: str,
           stem: Path, note: str = "", order: list[str] | None = None,
           formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Grouped bars of paired mean differences (option - baseline) per benchmark, with CIs and
    * where the one-sided test is significant; `zscore_mean` in its own panel (z units).
    `order` (all options, baseline included) gives each option the colour it has in the radar."""
    options = list(dict.fromkeys(comparisons["option"]))
    order = order or [baseline, *options]
    palette = _colors(len(order))
    colors = [palette[order.index(o)] for o in options]
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(max(6.0, 0.55 * len(benchmarks) * max(1, len(options)) ** 0.5 + 3),
                              3.8))
        grid = fig.add_gridspec(1, 2, width_ratios=[max(len(benchmarks), 1), 1.4], wspace=0.25)
        panels = [(fig.add_subplot(grid[0]), benchmarks, "Δ vs baseline (points)"),
                  (fig.add_subplot(grid[1]), ["zscore_mean"], "Δ zscore_mean (z)")]
        width = 0.8 / max(len(options), 1)
        for ax, metrics, ylabel in panels:
            for i, (option, color) in enumerate(zip(options, colors)):
                rows = comparisons[comparisons["option"] == option].set_index("metric")
                rows = rows.reindex(metrics)
                x = np.arange(len(metrics)) + (i - (len(options) - 1) / 2) * width
                mean = rows["mean_delta"].to_numpy(float)
                err = np.vstack([mean - rows["ci_low"], rows["ci_high"] - mean]).astype(float)
                n = int(rows["n_pairs"].max()) if rows["n_pairs"].notna().any() else 0
                ax.bar(x, np.nan_to_num(mean), width, color=color, label=f"{option} (n={n})")
                has_ci = ~np.isnan(err).any(axis=0)
                if has_ci.any():  # no whiskers at all where a CI needs more pairs
                    ax.errorbar(x[has_ci], mean[has_ci], yerr=err[:, has_ci], fmt="none",
                                ecolor="0.2", elinewidth=0.8, capsize=2)
                for xi, m, v in zip(x, mean, rows["verdict"]):
                    if v in ("better", "worse"):
                        ax.annotate("*", (xi, m), ha="center", va="bottom" if m >= 0 else "top",
                                    fontsize=11)
            ax.axhline(0, color="0.2", lw=0.8)
            ax.set_xticks(np.arange(len(metrics)))
            ax.set_xticklabels(metrics, rotation=40, ha="right")
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", color="0.9")
            ax.set_axisbelow(True)
        main = panels[0][0]
        main.set_title(title, loc="left", pad=14)
        if note:
            main.text(0, 1.01, note, transform=main.transAxes, fontsize=7, color="0.4",
                      va="bottom")
        main.legend(frameon=False, loc="best")
        return _save(fig, stem, formats)
