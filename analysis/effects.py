"""Main effects of each axis in a factorial sweep, and an F-test per axis.

Model: every run's score = grand mean + one effect per axis option (additive, no interactions),
fitted by least squares with sum-to-zero (deviation) coding, so an option's effect is its
departure from the average option. In a balanced full factorial this equals the option's
marginal mean minus the grand mean; in an unbalanced sweep it is adjusted for the other axes.
Context columns that vary (axes left out of the comparison) are fitted as nuisance factors.

The F-test per axis compares the additive model with and without that axis (Type II sums of
squares): F = (SS_axis / df_axis) / (RSS / df_resid). Seeds give the residual degrees of
freedom; with none left the F-test is undefined (NaN).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.results import Results
from analysis.stats import ZMEAN

log = logging.getLogger(__name__)


def _coding(values: pd.Series, options: list[str]) -> np.ndarray:
    """Deviation-coded columns of one factor: option j -> e_j, last option -> -1 everywhere."""
    out = np.zeros((len(values), len(options) - 1))
    codes = values.map({o: i for i, o in enumerate(options)}).to_numpy()
    for j in range(len(options) - 1):
        out[:, j] = codes == j
    out[codes == len(options) - 1, :] = -1.0
    return out


def _factors(results: Results, runs: pd.DataFrame) -> dict[str, list[str]]:
    factors = {axis: results.options(axis) for axis in results.axes}
    for col in results.context:
        values = list(dict.fromkeys(runs[col]))
        if len(values) > 1:
            factors[col] = values
    return factors


def _fit(y: np.ndarray, blocks: list[np.ndarray]) -> tuple[np.ndarray, float, int]:
    """Least-squares coefficients, residual sum of squares and rank of [1, blocks...]."""
    x = np.column_stack([np.ones(len(y)), *blocks])
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    return coef, float(resid @ resid), int(rank)


def main_effects(results: Results, runs: pd.DataFrame) -> pd.DataFrame:
    """Effect of each option of each axis on every benchmark (percentage points) and on
    `zscore_mean` (z units). One row per (axis, option) with `n_runs`."""
    metrics = [*results.benchmarks, ZMEAN]
    factors = _factors(results, runs)
    rows = {(a, o): {"axis": a, "option": o, "n_runs": int((runs[a] == o).sum())}
            for a in results.axes for o in factors[a]}
    for metric in metrics:
        data = runs[runs[metric].notna()]
        blocks = {f: _coding(data[f], opts) for f, opts in factors.items()}
        coef, _, rank = _fit(data[metric].to_numpy(float), list(blocks.values()))
        if rank < 1 + sum(b.shape[1] for b in blocks.values()):
            log.warning("%s: axes are confounded (not every option combination is separable); "
                        "main effects are not uniquely determined", metric)
        start = 1
        for f, opts in factors.items():
            k = len(opts) - 1
            eff = list(coef[start:start + k]) + [-float(np.sum(coef[start:start + k]))]
            start += k
            if f in results.axes:
                for option, value in zip(opts, eff):
                    rows[(f, option)][metric] = float(value)
    return pd.DataFrame(list(rows.values()), columns=["axis", "option", "n_runs", *metrics])


def anova(results: Results, runs: pd.DataFrame, metric: str = ZMEAN) -> pd.DataFrame:
    """Type II F-test of each axis on `metric`: columns axis, metric, df, df_resid, sum_sq,
    F, p_value (NaN without residual degrees of freedom)."""
    data = runs[runs[metric].notna()]
    y = data[metric].to_numpy(float)
    factors = _factors(results, data)
    blocks = {f: _coding(data[f], opts) for f, opts in factors.items()}
    _, rss, rank = _fit(y, list(blocks.values()))
    df_resid = len(y) - rank
    rows = []
    for axis in results.axes:
        _, rss_red, rank_red = _fit(y, [b for f, b in blocks.items() if f != axis])
        df, ss = rank - rank_red, max(rss_red - rss, 0.0)
        if df_resid > 0 and df > 0 and rss > 1e-12 * max(1.0, float(y @ y)):
            f_stat = (ss / df) / (rss / df_resid)
            p = float(sps.f.sf(f_stat, df, df_resid))
        else:
            f_stat = p = float("nan")
        rows.append([axis, metric, df, df_resid, ss, f_stat, p])
    columns = ["axis", "metric", "df", "df_resid", "sum_sq", "F", "p_value"]
    return pd.DataFrame(rows, columns=columns)
