"""Descriptive statistics: seeds into mean and confidence interval, z-scores, option means.

Aggregation follows the paper: per benchmark, z = (x - mean) / std over the compared
configurations (population std, ddof=0), and a configuration's aggregate is its mean z over
benchmarks (`zscore_mean`). z-scores are scale-free, so percent or fraction inputs agree.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.results import Results, config_labels

log = logging.getLogger(__name__)

ZMEAN = "zscore_mean"
CI_SUFFIX = "_ci"  # column suffix: half-width of the confidence interval of a mean


def ci_halfwidth(values: pd.Series | np.ndarray, level: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean; NaN below two values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return float("nan")
    sem = x.std(ddof=1) / np.sqrt(len(x))
    return float(sps.t.ppf(0.5 + level / 2, len(x) - 1) * sem)


def zscores(scores: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-column z-scores of `scores` against the mean and population std of `reference`.

    A benchmark on which every reference row scores the same carries no ranking information:
    its z is 0 rather than a division by zero.
    """
    ref = scores if reference is None else reference
    mean, std = ref.mean(), ref.std(ddof=0)
    flat = ~(std > 1e-12)
    if flat.any():
        log.info("benchmarks without spread (z=0): %s", list(std.index[flat]))
    z = (scores - mean) / std.where(~flat, 1.0)
    for column in std.index[flat]:
        z[column] = scores[column] * 0.0  # 0, NaN stays NaN
    return z


def configurations(results: Results, level: float = 0.95) -> pd.DataFrame:
    """One row per configuration: seeds averaged, CI half-widths, `zscore_mean` and `rank`.

    Rows are sorted best first. Columns: `rank`, `label`, the configuration columns, `n_runs`,
    each benchmark (mean, percent), each `<benchmark>_ci`, `zscore_mean`.
    """
    runs, keys, benches = results.runs, results.config_columns, results.benchmarks
    if keys:
        grouped = runs.groupby(keys, sort=False, dropna=False)
        table = grouped[benches].mean().reset_index()
        table.insert(len(keys), "n_runs", grouped.size().to_numpy())
        cis = grouped[benches].agg(lambda s: ci_halfwidth(s, level)).reset_index(drop=True)
        names = grouped[results.label].agg(_join).reset_index(drop=True) if results.label else None
    else:  # nothing identifies a configuration: all runs are repeats of one
        table = runs[benches].mean().to_frame().T
        table.insert(0, "n_runs", len(runs))
        cis = runs[benches].agg(lambda s: ci_halfwidth(s, level)).to_frame().T
        names = pd.Series([_join(runs[results.label])]) if results.label else None
    for b in benches:
        table[b + CI_SUFFIX] = cis[b].to_numpy()
    table[ZMEAN] = zscores(table[benches]).mean(axis=1, skipna=True)
    label = names if names is not None else config_labels(table, keys)
    table.insert(0, "label", label.to_numpy())
    table = table.sort_values(ZMEAN, ascending=False, kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def run_zscores(results: Results, configs: pd.DataFrame) -> pd.DataFrame:
    """Runs with z-scores against the configurations' mean and std, plus their `zscore_mean`.

    Using the configuration-level reference makes a configuration's seed-mean of run z-scores
    equal its `zscore_mean` in the summary, so run-level tests and the ranking agree.
    """
    benches = results.benchmarks
    runs = results.runs.copy()
    z = zscores(runs[benches], reference=configs[benches])
    runs[ZMEAN] = z.mean(axis=1, skipna=True)
    return runs


def option_means(results: Results, configs: pd.DataFrame, axis: str, level: float = 0.95,
                 ) -> pd.DataFrame:
    """Per option of `axis`: the mean over configurations with that option (marginalising the
    other axes; each configuration counts once whatever its number of seeds), with counts and the
    `<benchmark>_ci` half-width of that mean from the seed-to-seed spread (`option_ci`)."""
    cols = [*results.benchmarks, ZMEAN]
    grouped = configs.groupby(axis, sort=False)
    table = grouped[cols].mean()
    table.insert(0, "n_runs", grouped["n_runs"].sum())
    table.insert(0, "n_configs", grouped.size())
    table = table.reindex(results.options(axis))
    for b in results.benchmarks:
        table[b + CI_SUFFIX] = [option_ci(results, axis, o, b, level) for o in table.index]
    table.index.name = axis
    return table.reset_index()


def option_ci(results: Results, axis: str, option: str, benchmark: str, level: float = 0.95,
              ) -> float:
    """CI half-width of an option's mean over its configurations, from the seeds' spread within
    each configuration (the other axes are part of the design, not noise): the pooled seed
    variance s^2 (sum(k_c - 1) degrees of freedom), SE^2 = s^2 * sum(1 / k_c) / n^2 over the
    option's n configurations of k_c seeds each. NaN without replicated configurations."""
    runs = results.runs[results.runs[axis] == option]
    keys = results.config_columns
    groups = runs.groupby(keys, dropna=False)[benchmark] if keys else [(None, runs[benchmark])]
    squares, df, n, inverse = 0.0, 0, 0, 0.0
    for _, values in groups:
        x = values.dropna().to_numpy(float)
        if len(x) == 0:
            continue
        n, inverse = n + 1, inverse + 1 / len(x)
        squares += float(((x - x.mean()) ** 2).sum())
        df += len(x) - 1
    if df == 0:
        return float("nan")
    return float(sps.t.ppf(0.5 + level / 2, df) * np.sqrt(squares / df * inverse) / n)


def _join(values: pd.Series) -> str:
    return " / ".join(dict.fromkeys(str(v) for v in values))
