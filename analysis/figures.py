"""Publication figures: radar charts per axis and grouped bars of paired deltas.

Figures are drawn on bare `Figure` objects with the Agg canvas (no pyplot state, no display)
and saved as PNG and PDF (TrueType fonts embedded, so text stays editable and sharp).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STYLE = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 9, "axes.titlesize": 10,
         "legend.fontsize": 8, "savefig.dpi": 200}
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
INNER = 0.15  # radius of the worst score on a spoke: polygons never collapse to the centre


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


def normalise(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Per-column min-max scaling onto [INNER, 1] so that benchmarks of different ranges share
    one radius scale; a column without spread sits mid-way. Returns (radii, min, max)."""
    lo, hi = scores.min(), scores.max()
    span = (hi - lo).where(hi - lo > 1e-12)
    radii = INNER + (1 - INNER) * (scores - lo) / span
    return radii.fillna({c: (1 + INNER) / 2 for c in span.index[span.isna()]}), lo, hi


def radar(table: pd.DataFrame, labels: list[str], benchmarks: list[str], title: str,
          stem: Path, legend_title: str = "", formats: tuple[str, ...] = ("png", "pdf"),
          ) -> list[Path]:
    """One polygon per row of `table`, one spoke per benchmark (scores normalised per benchmark;
    each spoke is labelled with its raw range so absolute values stay readable)."""
    radii, lo, hi = normalise(table[benchmarks].astype(float))
    angles = np.linspace(0, 2 * math.pi, len(benchmarks), endpoint=False)
    closed = np.append(angles, angles[0])
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(7.0, 5.6))
        ax = fig.add_subplot(projection="polar")
        ax.set_theta_offset(math.pi / 2)
        ax.set_theta_direction(-1)
        for i, (row, color) in enumerate(zip(radii.to_numpy(), _colors(len(radii)))):
            values = np.append(row, row[0])
            ax.plot(closed, values, color=color, lw=1.6, ls=LINESTYLES[i % 4],
                    marker=MARKERS[i % len(MARKERS)], ms=3.5, label=labels[i])
            ax.fill(closed, np.nan_to_num(values), color=color, alpha=0.06)
        ax.set_xticks(angles)
        ax.set_xticklabels([f"{b}\n{lo[b]:.1f}–{hi[b]:.1f}" for b in benchmarks], fontsize=8)
        ax.tick_params(axis="x", pad=14)  # keep spoke labels clear of the outer ring
        ax.set_ylim(0, 1.05)
        ax.set_yticks([INNER, (1 + INNER) / 2, 1.0])
        ax.set_yticklabels([])
        ax.set_title(title, pad=22)
        ax.legend(title=legend_title or None, loc="upper left", bbox_to_anchor=(1.12, 1.02),
                  frameon=False)
        fig.text(0.01, 0.01, "each spoke scaled min–max over the polygons shown (range in %)",
                 fontsize=7, color="0.4")
        return _save(fig, stem, formats)


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
