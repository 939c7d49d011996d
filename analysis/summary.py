"""Everything the report shows, computed once from `Results` as pandas DataFrames.

`analyze(results)` is the notebook entry point: its fields are plain DataFrames (scores in
percent, z-scores in z units) that the figures, tables and report only format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.comparisons import check_baselines, compare
from analysis.effects import anova, main_effects
from analysis.results import AnalysisError, Results
from analysis.stats import configurations, option_means, run_zscores


@dataclass
class Analysis:
    """The statistics of one set of results.

    - `summary`: one row per configuration (seeds averaged), best first, with `zscore_mean`.
    - `runs`: the input runs with their run-level `zscore_mean`.
    - `options`: per axis, one row per option (mean over its configurations).
    - `comparisons`: paired tests of each option against its axis' baseline, corrected for
      multiple comparisons per axis (`correction`), with the pairs and seeds a verdict would need.
    - `effects`: main effect of each option (least squares, sum-to-zero coding).
    - `anova`: F-test of each axis on `zscore_mean`.
    """

    results: Results
    summary: pd.DataFrame
    runs: pd.DataFrame
    options: dict[str, pd.DataFrame]
    comparisons: pd.DataFrame
    effects: pd.DataFrame
    anova: pd.DataFrame
    baselines: dict[str, str] = field(default_factory=dict)
    test: str = "t"
    alpha: float = 0.01
    level: float = 0.95
    correction: str = "holm"

    def undecided(self, axis: str | None = None) -> list[str]:
        """Benchmarks on which no option of `axis` (of any axis: None) gets a verdict."""
        comps = self.comparisons if axis is None else self.comparisons[self.comparisons["axis"] == axis]
        decided = set(comps.loc[comps["verdict"].isin(["better", "worse"]), "metric"])
        return [b for b in self.results.benchmarks if b not in decided] if len(comps) else []


def analyze(results: Results, baselines: dict[str, str] | None = None, test: str = "t",
            alpha: float = 0.01, level: float = 0.95, correction: str = "holm") -> Analysis:
    """Summarise `results`: seed means and CIs, z-scores, option means, paired tests, effects.

    `baselines` maps an axis to the option the others are compared with (default: each axis'
    first option); `test` is "t" or "wilcoxon" (see `analysis.comparisons`); `alpha` is the
    one-sided significance level (the paper's 0.01) that corrected p-values are held to;
    `correction` is "holm", "bonferroni" or "none" (analysis.power); `level` the confidence level
    of intervals.
    """
    if not 0 < alpha < 1 or not 0 < level < 1:
        raise AnalysisError(f"alpha ({alpha}) and confidence level ({level}) must lie in (0, 1)")
    baselines = dict(baselines or {})
    check_baselines(results, baselines)
    chosen = {a: baselines.get(a, results.options(a)[0]) for a in results.axes}
    summary = configurations(results, level)
    runs = run_zscores(results, summary)
    return Analysis(
        results=results,
        summary=summary,
        runs=runs,
        options={axis: option_means(results, summary, axis, level) for axis in results.axes},
        comparisons=compare(results, runs, chosen, test, alpha, level, correction),
        effects=main_effects(results, runs) if results.axes else pd.DataFrame(),
        anova=anova(results, runs) if results.axes else pd.DataFrame(),
        baselines=chosen,
        test=test,
        alpha=alpha,
        level=level,
        correction=correction,
    )
