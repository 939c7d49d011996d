"""Write an `Analysis` to a folder: figures, tables (CSV, Markdown, LaTeX) and report.html.

Everything is rendered into a hidden staging folder beside the output and moved in at the end,
`report.html` last: a failure leaves the output folder as it was, never a half-written report
that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, tables
from analysis.comparisons import needs_text
from analysis.floors import floors
from analysis.page import render_page
from analysis.results import AnalysisError, config_labels, slug
from analysis.stats import CI_SUFFIX, ZMEAN
from analysis.summary import Analysis

log = logging.getLogger(__name__)

TOP_CONFIGS = 8  # polygons in the radar of the best configurations


@dataclass
class Section:
    """One block of the HTML page: a title, prose, figures (PNG paths) and tables."""

    title: str
    text: str = ""
    figures: list[Path] = field(default_factory=list)
    tables: list[tables.Table] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def write_report(analysis: Analysis, out: str | Path, formats: tuple[str, ...] = ("png", "pdf"),
                 radar_scale: str = "floor") -> list[Path]:
    """Render `analysis` into folder `out` (created if needed); returns the files written.
    `radar_scale`: "floor" (default), "percent" or "minmax" (figures.spoke_range)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"--out {out} is a file; choose a folder")
    if "png" not in formats:
        formats = ("png", *formats)  # the HTML page embeds the PNGs
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        sections = _render(analysis, staging, formats, radar_scale)
        sections += study_sections(analysis, staging, formats, radar_scale)
        (staging / "report.html").write_text(render_page(analysis, sections), "utf-8")
        names = sorted(p.name for p in staging.iterdir() if p.name != "report.html")
        out.mkdir(exist_ok=True)
        for name in [*names, "report.html"]:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %d files to %s", len(names) + 1, out)
    return [out / n for n in [*names, "report.html"]]


def _write_table(frame: pd.DataFrame, folder: Path, stem: str, table: tables.Table) -> list[str]:
    # CRLF rows (RFC 4180): the csv module then quotes a cell holding a CR, which would otherwise
    # end the row in a spreadsheet and start a new one with the rest of the cell
    tables.spreadsheet_safe(frame).to_csv(folder / f"{stem}.csv", index=False,
                                          lineterminator="\r\n")
    (folder / f"{stem}.md").write_text(tables.markdown(table), "utf-8")
    (folder / f"{stem}.tex").write_text(tables.latex(table), "utf-8")
    return [f"{stem}.csv", f"{stem}.md", f"{stem}.tex"]


def score_table(frame: pd.DataFrame, keys: list[str], benchmarks: list[str], caption: str,
                ) -> tables.Table:
    """Scores (mean ± CI half-width where seeds allow) and `zscore_mean`, best marked."""
    shown = frame[keys].copy()
    for b in benchmarks:
        ci = frame.get(b + CI_SUFFIX)
        shown[b] = [tables.number()(m) + (f" ± {c:.2f}" if ci is not None and pd.notna(c) else "")
                    for m, c in zip(frame[b], ci if ci is not None else [None] * len(frame))]
    shown[ZMEAN] = frame[ZMEAN]
    return tables.from_frame(shown, {ZMEAN: tables.number(3, signed=True)},
                             best=[*benchmarks, ZMEAN], caption=caption, values=frame)


def comparison_table(frame: pd.DataFrame, caption: str) -> tables.Table:
    shown = frame[["axis", "baseline", "option", "metric", "n_pairs", "mean_delta", "ci_low",
                   "ci_high", "p_greater", "p_less", "p_adjusted", "verdict"]].copy()
    shown["needs"] = [needs_text(row) for _, row in frame.iterrows()]
    fmt = {"mean_delta": tables.number(2, True), "ci_low": tables.number(2, True),
           "ci_high": tables.number(2, True), "p_greater": tables.pvalue, "p_less": tables.pvalue,
           "p_adjusted": tables.pvalue}
    heads = {"mean_delta": "Δ mean", "ci_low": "CI low", "ci_high": "CI high",
             "p_greater": "raw p (option > baseline)", "p_less": "raw p (option < baseline)",
             "p_adjusted": "adjusted p", "n_pairs": "n", "needs": "a verdict needs"}
    return tables.from_frame(shown, fmt, caption=caption, headers=heads)


def verdict_frame(a: Analysis) -> pd.DataFrame:
    """One row per (axis, option) against its baseline, one column per metric: the verdict with
    the mean difference, e.g. "better +12.4" (the table a reader looks at first)."""
    comps = a.comparisons
    if comps.empty:
        return pd.DataFrame()
    cells = [f"{v} {d:+.1f}" if v in ("better", "worse") else v
             for v, d in zip(comps["verdict"], comps["mean_delta"])]
    wide = comps.assign(cell=cells).pivot_table(index=["axis", "option", "baseline", "n_pairs"],
                                                columns="metric", values="cell", aggfunc="first",
                                                sort=False)
    order = [m for m in [*a.results.benchmarks, ZMEAN] if m in wide.columns]
    return wide[order].reset_index().rename(columns={"n_pairs": "n"}).rename_axis(columns=None)


def _method(a: Analysis) -> str:
    return f"one-sided paired {a.test} test, {a.correction} over each axis, α={a.alpha:g}"


def _render(a: Analysis, folder: Path, formats: tuple[str, ...], scale: str = "floor",
            prefix: str = "") -> list[Section]:
    res, benches = a.results, a.results.benchmarks
    level = f"{a.level:.0%}"
    spoke_floors = floors(res)
    keys = ["rank", "label"] + (["n_runs"] if (a.summary["n_runs"] > 1).any() else [])
    table = score_table(a.summary, keys, benches, f"Configurations ranked by zscore_mean; scores "
                        f"in %, mean ± {level} CI half-width over seeds where there are several; "
                        "best bold")
    ranking = Section("Ranking by mean z-score", tables=[table],
                      links=_write_table(a.summary, folder, f"{prefix}summary", table))
    sections = [ranking]
    if res.eval_settings and not prefix:
        sections.append(_settings_section(res, folder))
    if len(res.axes) > 1 or (not res.axes and len(a.summary) > 1):
        top = a.summary.head(TOP_CONFIGS)
        # legend from what differs among the polygons shown; what they share goes in its title
        labels = (top["label"] if res.label or not res.axes
                  else config_labels(top, res.axes, bare=False))
        shared = ", ".join(f"{c}={top[c].iloc[0]}" for c in res.axes if top[c].nunique() == 1)
        ranking.figures = figures.radar(top, list(labels), benches,
                                        f"Top {len(top)} configurations by zscore_mean",
                                        folder / f"{prefix}radar_top", shared, formats,
                                        floors=spoke_floors, scale=scale,
                                        undecided=a.undecided(), decided_by=_method(a),
                                        ci_level=a.level)[:1]
    verdicts = verdict_frame(a)
    if not verdicts.empty:
        vt = tables.from_frame(verdicts, caption=f"Verdicts against each axis' baseline "
                               f"({_method(a)}; Δ in points, z for zscore_mean): better / worse "
                               "is significant after the correction; n.s. and underpowered rows "
                               "are in the comparisons table with the pairs a verdict needs")
        sections.append(Section("Verdicts", tables=[vt],
                                links=_write_table(verdicts, folder, f"{prefix}verdicts", vt)))
    for axis in res.axes:
        sections.append(_axis_section(a, axis, folder, formats, scale, spoke_floors, prefix))
    if res.axes:
        effects = tables.from_frame(a.effects, {c: tables.number(2, True) for c in benches} |
                                    {ZMEAN: tables.number(3, True)},
                                    caption="Main effects (deviation from the average option; "
                                    "points for benchmarks, z for zscore_mean)")
        anova = tables.from_frame(a.anova, {"p_value": tables.pvalue, "F": tables.number(2),
                                            "sum_sq": tables.number(3)},
                                  caption="F-test per axis on run-level zscore_mean (Type II)")
        sections.append(Section("Main effects", tables=[effects, anova], links=[
            *_write_table(a.effects, folder, f"{prefix}main_effects", effects),
            *_write_table(a.anova, folder, f"{prefix}anova", anova)]))
        links = _write_table(a.comparisons, folder, f"{prefix}comparisons", comparison_table(
            a.comparisons, "Paired comparisons against each axis' baseline"))
        sections.append(Section("All paired comparisons", links=links))
    return sections


def _settings_section(res, folder: Path) -> Section:
    """What each benchmark's scores were evaluated with (analysis/settings.py): every run ranked on
    a benchmark shares its row's setting."""
    frame = pd.DataFrame({"benchmark": list(res.eval_settings), "setting": list(res.eval_settings.values()),
                          "runs": [int(res.runs[b].notna().sum()) for b in res.eval_settings]})
    table = tables.from_frame(frame, caption="Evaluation settings: the runs ranked on a benchmark were all "
                              "scored under its row's setting (fields a run does not record are left out)")
    text = " ".join(f"Note: {n}." for n in res.setting_notes)
    return Section("Evaluation settings", text=text, tables=[table],
                   links=_write_table(frame, folder, "eval_settings", table))


def _axis_section(a: Analysis, axis: str, folder: Path, formats: tuple[str, ...],
                  scale: str = "floor", spoke_floors: dict | None = None,
                  prefix: str = "") -> Section:
    res, benches, stem = a.results, a.results.benchmarks, prefix + slug(axis)
    options = a.options[axis]
    n_configs = int(options["n_configs"].sum())
    single = bool((options["n_runs"] == 1).all())
    labels = [o if single else f"{o} (n={n})" for o, n in zip(options[axis], options["n_runs"])]
    title = (f"{axis}: per-benchmark scores" if single else
             f"{axis}: mean per option over {n_configs} configurations")
    radar = figures.radar(options, labels, benches, title, folder / f"radar_{stem}", axis, formats,
                          floors=spoke_floors, scale=scale, undecided=a.undecided(axis),
                          decided_by=_method(a), ci_level=a.level)
    table = score_table(options, [axis, "n_configs", "n_runs"], benches,
                        f"{axis}: mean over the configurations of each option (scores in %)")
    links = [p.name for p in radar] + _write_table(options, folder, f"options_{stem}", table)
    section = Section(f"Axis: {axis}", figures=[radar[0]], tables=[table], links=links)
    base = a.baselines[axis]
    comps = a.comparisons[a.comparisons["axis"] == axis]
    if not comps.empty:
        note = (f"bars: mean paired difference option − {base}; whiskers: {a.level:.0%} CI; "
                f"* significant ({_method(a)})")
        bars = figures.deltas(comps, benches, base, f"{axis}: paired differences against {base}",
                              folder / f"deltas_{stem}", note, res.options(axis), formats)
        section.figures.append(bars[0])
        section.links += [p.name for p in bars]
        section.tables.append(comparison_table(comps, f"{axis}: paired comparisons against {base}"))
    others = [c for c in res.config_columns if c != axis and a.summary[c].nunique() > 1]
    pairing = ", ".join(others + ([res.seed] if res.seed else [])) or "nothing else varies"
    section.text = (f"Radar spokes are benchmarks, polygons the options of {axis} "
                    f"(mean over configurations, other axes marginalised). Pairs match on: "
                    f"{pairing}. Baseline: {base}. " + _needs_summary(comps))
    return section


def _needs_summary(comps: pd.DataFrame) -> str:
    """A sentence on what the undecided comparisons of an axis would need."""
    open_rows = comps[~comps["verdict"].isin(["better", "worse", "no difference", "no pairs"])]
    if comps.empty or open_rows.empty:
        return ""
    seeds = open_rows["seeds_needed"].replace(np.inf, np.nan).dropna()
    text = f"{len(open_rows)} of {len(comps)} comparisons have no verdict"
    if len(seeds):
        k = int(seeds.min())
        text += (f"; the closest would need about {k} seeds (e.g. seed={','.join(map(str, range(k)))}"
                 " on the same command)" if k <= 10 else f"; even the closest would need {k} seeds")
    return text + "."


def study_sections(a: Analysis, folder: Path, formats: tuple[str, ...], scale: str = "floor",
                   ) -> list[Section]:
    """A study's runs (tag vlm_sweeps.section) report section by section: each study section's
    experiments with the baseline's runs, analysed alone (files prefixed `section_<name>_`)."""
    from analysis.sections import split_sections
    from analysis.summary import analyze

    out = []
    for name, res in split_sections(a.results):
        sub = analyze(res, test=a.test, alpha=a.alpha, level=a.level, correction=a.correction)
        parts = _render(sub, folder, formats, scale, prefix=f"section_{slug(name)}_")
        head = parts[0]
        head.title = f"Study section {name}: ranking ({len(sub.summary)} configurations)"
        for part in parts[1:]:
            part.title = f"Section {name} · {part.title}"
        out += parts
    return out
