"""The self-contained HTML report page: figures embedded as base64 PNG, tables inline.

One file that opens anywhere (mail, an MLflow artifact view, a laptop offline): no external
CSS, scripts or images. Links point at the PDF/CSV/Markdown/LaTeX files beside it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

from analysis import tables

if TYPE_CHECKING:  # report imports page; the types are only for annotations
    from analysis.report import Section
    from analysis.summary import Analysis

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.5em}
h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}caption{text-align:left;color:#555;
padding:.3em 0}th,td{padding:.25em .6em;border-bottom:1px solid #eee}th{background:#f6f6f6}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%;height:auto}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.figs img{max-width:580px}
.meta,.links{color:#555;font-size:.9em}.scroll{overflow-x:auto}
"""

METHODS = (
    "Scores are in percent (store fractions × 100). Seeds of one configuration are averaged; "
    "± is the half-width of the Student-t {level} confidence interval of that mean. "
    "z-scores follow the paper: per benchmark, z = (x − mean) / std over the compared "
    "configurations (population std), and <code>zscore_mean</code> averages z over benchmarks; "
    "the ranking sorts by it. Radar spokes run from each benchmark's floor (its blind control "
    "where the runs carry one, else chance for closed-set tasks, else 0) to the best polygon, "
    "with {level} confidence bands; grey spokes: no option differs there. "
    "Paired comparisons match runs that agree on every other axis, context setting and seed, and "
    "test option − baseline one-sided in both directions with the {test}; raw p-values are kept, "
    "and the verdict needs the {correction} p-value below {alpha} (each axis is one family: "
    "every option × metric × direction), so an axis gets any false verdict with probability at "
    "most {alpha}. Comparisons without a verdict say how many pairs and seeds one would need "
    "(power 0.8 for the observed effect); <code>seed=0,1,2</code> on the sweep's command is the "
    "usual way to get one. Main effects come from an additive least-squares "
    "model with sum-to-zero coding (a balanced factorial gives marginal mean − grand mean); "
    "the F-test per axis uses Type II sums of squares on run-level zscore_mean."
)
TEST_NAMES = {"wilcoxon": "Wilcoxon signed-rank test (exact for small n; zero differences "
              "dropped)", "t": "paired Student t-test"}
CORRECTION_NAMES = {"holm": "Holm-adjusted", "bonferroni": "Bonferroni-adjusted",
                    "none": "raw (uncorrected)"}


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def _section(section: "Section") -> str:
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(f"<p>{html.escape(section.text)}</p>")
    if section.figures:
        parts.append('<div class="figs">' + "".join(_img(p) for p in section.figures) + "</div>")
    parts += [f'<div class="scroll">{tables.html(t)}</div>' for t in section.tables]
    if section.links:
        links = " · ".join(f'<a href="{html.escape(n)}">{html.escape(n)}</a>'
                           for n in section.links)
        parts.append(f'<p class="links">Files: {links}</p>')
    return "\n".join(parts)


def settings_text(res) -> str:
    """Each distinct evaluation setting with the benchmarks scored under it (analysis/settings.py),
    then what was done about benchmarks scored under several."""
    by: dict[str, list[str]] = {}
    for bench, setting in res.eval_settings.items():
        by.setdefault(setting, []).append(bench)
    text = "; ".join(f"{', '.join(b)}: {s}" for s, b in by.items()) or "not recorded"
    return " ".join([text, *(f"NOTE: {n}." for n in res.setting_notes)])


def render_page(a: "Analysis", sections: list["Section"]) -> str:
    """The whole page: what was analysed and how, then each section."""
    res = a.results
    consts = ", ".join(f"{k}={v}" for k, v in res.constants.items()) or "none"
    metrics = ", ".join(f"{b} ({m})" if m != b else b for b, m in res.metric_names.items())
    meta = (f"<p class='meta'>Source: {html.escape(res.source)}<br>"
            f"Compared axes: {html.escape(', '.join(res.axes) or 'none varies')}<br>"
            f"Shared settings: {html.escape(consts)}<br>"
            f"Benchmarks (headline metric): {html.escape(metrics)}<br>"
            f"Evaluation settings: {html.escape(settings_text(res))}<br>"
            f"{len(a.runs)} runs in {len(a.summary)} configurations</p>")
    methods = METHODS.format(level=f"{a.level:.0%}", test=TEST_NAMES[a.test], alpha=f"{a.alpha:g}",
                             correction=CORRECTION_NAMES[a.correction])
    body = "\n".join(_section(s) for s in sections)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>vlm_sweeps analysis</title><style>{CSS}</style></head><body>\n"
            f"<h1>Sweep analysis</h1>\n{meta}\n<p class='meta'>{methods}</p>\n{body}\n"
            f"</body></html>\n")
