"""Paired comparisons between the options of an axis, with one-sided p-values.

A pair is two runs that differ only in the compared axis: every other axis, every context
column and the seed agree (runs sharing all of that are averaged first). Per benchmark and on
`zscore_mean`, the differences option - baseline are tested one-sided in both directions:
`p_greater` for H1 "option beats baseline", `p_less` for H1 "baseline beats option".

Tests (`test=`):
- "wilcoxon" (default): Wilcoxon signed-rank test on the paired differences; zero differences
  are dropped; exact null distribution for small n without ties (scipy's choice). It assumes no
  shape for the differences, which suits benchmarks of very different spread. Its smallest
  one-sided p-value is 2**-n, so fewer than 7 non-zero pairs cannot reach p < 0.01: such rows
  say "underpowered" rather than a bare "n.s.".
- "t": paired Student t-test (one-sided), assumes roughly normal differences; needs 2 pairs
  with non-constant differences.
A verdict "better"/"worse" means the one-sided p is below `alpha` (two one-sided tests at
alpha each are one two-sided test at 2*alpha).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.results import AnalysisError, Results
from analysis.stats import ZMEAN, ci_halfwidth

TESTS = ("wilcoxon", "t")
COLUMNS = ["axis", "baseline", "option", "metric", "n_pairs", "mean_delta", "ci_low", "ci_high",
           "p_greater", "p_less", "test", "verdict"]


def paired_differences(results: Results, runs: pd.DataFrame, axis: str, baseline: str,
                       option: str, metrics: list[str]) -> pd.DataFrame:
    """Differences option - baseline of `metrics`, one row per matched pair."""
    key = [c for c in results.config_columns if c != axis]
    if results.seed:
        key.append(results.seed)

    def side(value: str) -> pd.DataFrame:
        rows = runs[runs[axis] == value]
        if not key:
            return rows[metrics].mean().to_frame().T
        return rows.groupby(key, dropna=False)[metrics].mean()

    base, other = side(baseline), side(option)
    common = base.index.intersection(other.index)
    return other.loc[common] - base.loc[common]


def one_sided(deltas: np.ndarray, test: str) -> tuple[float, float]:
    """(p_greater, p_less) of the paired `test` on `deltas`; NaN where it cannot be computed."""
    d = np.round(np.asarray(deltas, dtype=float), 10)  # float noise is not a difference
    d = d[~np.isnan(d)]
    if test == "wilcoxon":
        d = d[d != 0]
        if len(d) == 0:
            return float("nan"), float("nan")
        with warnings.catch_warnings():  # small-n approximation notes: n is reported anyway
            warnings.simplefilter("ignore")
            return (float(sps.wilcoxon(d, alternative="greater").pvalue),
                    float(sps.wilcoxon(d, alternative="less").pvalue))
    if test == "t":
        if len(d) < 2 or np.ptp(d) == 0:
            return float("nan"), float("nan")
        return (float(sps.ttest_1samp(d, 0.0, alternative="greater").pvalue),
                float(sps.ttest_1samp(d, 0.0, alternative="less").pvalue))
    raise AnalysisError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")


def verdict(deltas: np.ndarray, p_greater: float, p_less: float, test: str, alpha: float) -> str:
    """Plain-words outcome of one comparison, saying why when there is no p-value."""
    d = np.asarray(deltas, dtype=float)
    d = d[~np.isnan(d)]
    if len(d) == 0:
        return "no pairs"
    if p_greater < alpha:
        return "better"
    if p_less < alpha:
        return "worse"
    nonzero = int((np.round(d, 10) != 0).sum())
    if nonzero == 0:
        return "no difference"
    if np.isnan(p_greater):
        return f"too few pairs (n={len(d)})" if len(d) < 2 else "constant difference"
    if test == "wilcoxon" and 0.5 ** nonzero >= alpha:
        return f"underpowered (n={nonzero})"
    return "n.s."


def compare(results: Results, runs: pd.DataFrame, baselines: dict[str, str] | None = None,
            test: str = "wilcoxon", alpha: float = 0.01, level: float = 0.95) -> pd.DataFrame:
    """Every option of every axis against its axis' baseline (default: the first option).

    `runs` carries the run-level `zscore_mean` (see `stats.run_zscores`). Returns one row per
    (axis, option, metric) with the columns of `COLUMNS`; deltas are in percentage points for
    benchmarks and in z units for `zscore_mean`.
    """
    if test not in TESTS:
        raise AnalysisError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    baselines = baselines or {}
    metrics = [*results.benchmarks, ZMEAN]
    rows = []
    for axis in results.axes:
        options = results.options(axis)
        base = baselines.get(axis, options[0])
        for option in (o for o in options if o != base):
            diffs = paired_differences(results, runs, axis, base, option, metrics)
            for metric in metrics:
                d = diffs[metric].dropna().to_numpy()
                p_gt, p_lt = one_sided(d, test)
                mean = float(d.mean()) if len(d) else float("nan")
                half = ci_halfwidth(d, level)
                rows.append([axis, base, option, metric, len(d), mean, mean - half, mean + half,
                             p_gt, p_lt, test, verdict(d, p_gt, p_lt, test, alpha)])
    return pd.DataFrame(rows, columns=COLUMNS)


def check_baselines(results: Results, baselines: dict[str, str]) -> None:
    """Fail early, naming the valid choices, when a baseline names no axis or option."""
    for axis, option in baselines.items():
        if axis not in results.axes:
            raise AnalysisError(
                f"--baseline {axis}={option}: {axis!r} is not a compared axis; compared axes: "
                f"{', '.join(results.axes) or '(none)'}"
            )
        if option not in results.options(axis):
            raise AnalysisError(
                f"--baseline {axis}={option}: no such option; options of {axis}: "
                f"{', '.join(results.options(axis))}"
            )
