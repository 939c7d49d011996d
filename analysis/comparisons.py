"""Paired comparisons between the options of an axis, with one-sided p-values, multiple-comparison
control and, where a comparison cannot decide, how many pairs it would need.

A pair is two runs that differ only in the compared axis: every other axis, every context
column and the seed agree (runs sharing all of that are averaged first). Per benchmark and on
`zscore_mean`, the differences option - baseline are tested one-sided in both directions:
`p_greater` for H1 "option beats baseline", `p_less` for H1 "baseline beats option" (raw p-values,
kept). `p_adjusted` is the smaller of the two after the correction over the axis' family (every
option x metric x direction, see `analysis.power`); the verdict "better"/"worse" means
p_adjusted < alpha, so the chance of any false verdict on an axis is at most alpha.

Tests (`test=`):
- "t" (default): paired Student t-test, one-sided. It can reach any level with 2 or more pairs
  when the differences are consistent, which the default sweep's 3 to 9 pairs need; its
  calibration on sweep-like noise is checked by `analysis.calibration` (tests/analysis).
- "wilcoxon": Wilcoxon signed-rank test (zero differences dropped; exact for small n). It assumes
  no shape for the differences, but its smallest one-sided p is 2**-n: fewer than 7 non-zero pairs
  never reach 0.01, and a family's corrected level needs more.
Rows that cannot or did not reach the level say how many pairs (`pairs_needed`, for the observed
effect, power 0.8) and seeds of this sweep (`seeds_needed`) a verdict would take.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import power
from analysis.results import AnalysisError, Results
from analysis.stats import ZMEAN, ci_halfwidth

TESTS = ("t", "wilcoxon")
COLUMNS = ["axis", "baseline", "option", "metric", "n_pairs", "mean_delta", "ci_low", "ci_high",
           "p_greater", "p_less", "p_adjusted", "test", "correction", "verdict", "pairs_needed",
           "seeds_needed"]


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
        t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))  # scipy's ttest_1samp, without its overhead
        return float(sps.t.sf(t, len(d) - 1)), float(sps.t.cdf(t, len(d) - 1))
    raise AnalysisError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")


def verdict(deltas: np.ndarray, p_greater: float, p_less: float, test: str, alpha: float,
            level: float | None = None) -> str:
    """Plain-words outcome of one comparison, saying why when there is no p-value. `p_greater` and
    `p_less` are compared with `alpha` (pass corrected ones); `level` is the raw p the first step of
    the correction asks for (default alpha), which decides whether n pairs can reach it at all."""
    d = np.asarray(deltas, dtype=float)
    d = d[~np.isnan(d)]
    level = alpha if level is None else level
    if len(d) == 0:
        return "no pairs"
    if p_greater < alpha:
        return "better"
    if p_less < alpha:
        return "worse"
    nonzero = int((np.round(d, 10) != 0).sum())
    if nonzero == 0:
        return "no difference"
    n = nonzero if test == "wilcoxon" else len(d)
    if n < power.min_pairs(test, level):
        return f"underpowered (n={n})"
    if np.isnan(p_greater):
        return "constant difference"
    return "n.s."


def compare(results: Results, runs: pd.DataFrame, baselines: dict[str, str] | None = None,
            test: str = "t", alpha: float = 0.01, level: float = 0.95,
            correction: str = "holm", needs: bool = True) -> pd.DataFrame:
    """Every option of every axis against its axis' baseline (default: the first option).

    `runs` carries the run-level `zscore_mean` (see `stats.run_zscores`). Returns one row per
    (axis, option, metric) with the columns of `COLUMNS`; deltas are in percentage points for
    benchmarks and in z units for `zscore_mean`. `correction` ("holm", "bonferroni", "none")
    adjusts the p-values of each axis' family; `needs=False` skips the pairs-needed estimates.
    """
    if test not in TESTS:
        raise AnalysisError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    if correction not in power.CORRECTIONS:
        raise AnalysisError(f"unknown correction {correction!r}; choose one of "
                            f"{', '.join(power.CORRECTIONS)}")
    baselines = baselines or {}
    metrics = [*results.benchmarks, ZMEAN]
    frames = []
    for axis in results.axes:
        options = results.options(axis)
        base = baselines.get(axis, options[0])
        rows, diffs_of = [], []
        for option in (o for o in options if o != base):
            diffs = paired_differences(results, runs, axis, base, option, metrics)
            seeds = _seeds_per_pair(results, diffs)
            for metric in metrics:
                d = diffs[metric].dropna().to_numpy()
                p_gt, p_lt = one_sided(d, test)
                mean = float(d.mean()) if len(d) else float("nan")
                half = ci_halfwidth(d, level)
                rows.append([axis, base, option, metric, len(d), mean, mean - half, mean + half,
                             p_gt, p_lt, seeds])
                diffs_of.append(d)
        frames.append(_decide(rows, diffs_of, test, alpha, correction, needs))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return table[COLUMNS]


def _seeds_per_pair(results: Results, diffs: pd.DataFrame) -> float:
    """Distinct seeds among the pairs / pairs: what one more seed adds (1 without seeds)."""
    if not len(diffs):
        return float("nan")
    if not results.seed or results.seed not in (diffs.index.names or []):
        return 1.0 / len(diffs)
    return diffs.index.get_level_values(results.seed).nunique() / len(diffs)


def _decide(rows: list[list], diffs_of: list[np.ndarray], test: str, alpha: float,
            correction: str, needs: bool = True) -> pd.DataFrame:
    """One axis' rows: adjust its family's p-values (both directions of every row), verdicts, and
    the pairs and seeds a verdict would need."""
    frame = pd.DataFrame(rows, columns=[*COLUMNS[:10], "seeds_per_pair"])
    raw = np.concatenate([frame["p_greater"].to_numpy(float), frame["p_less"].to_numpy(float)])
    adjusted = power.adjust(raw, correction)
    p_gt_adj, p_lt_adj = adjusted[: len(frame)], adjusted[len(frame):]
    first = power.first_step_level(alpha, int((~np.isnan(raw)).sum()) or 2 * len(frame), correction)
    frame["p_adjusted"] = np.fmin(p_gt_adj, p_lt_adj)
    frame["test"], frame["correction"] = test, correction
    frame["verdict"] = [verdict(d, g, l, test, alpha, first)
                        for d, g, l in zip(diffs_of, p_gt_adj, p_lt_adj)]
    needed = [power.pairs_needed(d, test, first) if needs and v not in ("better", "worse")
              else float("nan") for d, v in zip(diffs_of, frame["verdict"])]
    frame["pairs_needed"] = needed
    # seeds: the pairs grow by (pairs per seed) with each seed added to the sweep
    per_seed = 1.0 / frame["seeds_per_pair"]
    frame["seeds_needed"] = np.ceil(np.asarray(needed) / per_seed.to_numpy())
    return frame.drop(columns="seeds_per_pair")


def needs_text(row: pd.Series) -> str:
    """What a comparison without a verdict would need, in words ("" when it has one)."""
    n = row.get("pairs_needed")
    if n is None or pd.isna(n) or row.get("verdict") in ("better", "worse"):
        return ""
    if np.isinf(n):
        return "no effect seen"
    seeds = int(row["seeds_needed"]) if pd.notna(row.get("seeds_needed")) else None
    where = f" (~{seeds} seeds)" if seeds else ""
    return f"~{int(n)} pairs{where}"


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
