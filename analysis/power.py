"""Multiple-comparison control and the number of pairs a comparison needs.

A report tests many hypotheses at once: every option of an axis against its baseline, on every
benchmark and on `zscore_mean`, in both directions. At alpha = 0.01 per test, 20 true-null tests
flag something about 18 % of the time; the family-wise error rate (FWER: the chance of at least
one false "better"/"worse") has to be controlled instead.

- "holm" (default): Holm's step-down procedure. Sort the m p-values; the i-th smallest is adjusted
  to max_{j<=i} min(1, (m - j + 1) p_(j)); reject where the adjusted p < alpha. It controls the FWER
  at alpha under any dependence between the tests (benchmarks of one run are correlated) and is
  uniformly more powerful than Bonferroni.
- "bonferroni": m * p, capped at 1.
- "none": raw p (the per-test error rate only).

The family is one axis: its options x metrics x both directions (each one-sided test is one
hypothesis, so a "better" and a "worse" claim are both counted). With m metrics and k options that
is 2 k m hypotheses, and the first step of Holm needs p < alpha / (2 k m).

`pairs_needed` answers "how many pairs would this comparison need": the smallest n at which a
one-sided paired t-test at the family's first-step level detects the observed standardised effect
(mean / sd of the differences) with probability POWER (noncentral t). For the Wilcoxon test, whose
smallest one-sided p is 2^-n, n must also satisfy 2^-n < level.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

CORRECTIONS = ("holm", "bonferroni", "none")
POWER = 0.8  # probability of detecting the observed effect that `pairs_needed` plans for
MAX_PAIRS = 10_000  # beyond this, report "more than": the observed effect is as good as none


def adjust(pvalues: np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values of one family (NaN stays NaN and is not counted in m)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    if method == "none":
        out[ok] = p[ok]
    elif method == "bonferroni":
        out[ok] = np.minimum(1.0, p[ok] * m)
    elif method == "holm":
        values = p[ok]
        order = np.argsort(values, kind="stable")
        scaled = values[order] * (m - np.arange(m))
        adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
        back = np.empty(m)
        back[order] = adjusted
        out[ok] = back
    else:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    return out


def first_step_level(alpha: float, hypotheses: int, method: str = "holm") -> float:
    """The raw p a single hypothesis must beat to be flagged first in its family."""
    if method == "none" or hypotheses <= 1:
        return alpha
    return alpha / hypotheses


def t_power(n: int, effect: float, level: float) -> float:
    """Power of the one-sided paired t-test with n pairs at `level` for standardised `effect`."""
    if n < 2:
        return 0.0
    df = n - 1
    return float(sps.nct.sf(sps.t.ppf(1 - level, df), df, abs(effect) * math.sqrt(n)))


def min_pairs(test: str, level: float) -> int:
    """Fewest pairs with which `test` can reach `level` at all."""
    if test == "wilcoxon":
        return max(1, math.floor(math.log2(1 / level)) + 1)  # 2^-n < level
    return 2


def pairs_needed(deltas: np.ndarray, test: str, level: float, power: float = POWER) -> float:
    """Pairs needed to detect the observed mean difference of `deltas` at `level` with `power`
    (inf when the differences show no effect, NaN below two differences)."""
    d = np.asarray(deltas, dtype=float)
    d = d[~np.isnan(d)]
    floor = min_pairs(test, level)
    if len(d) < 2:
        return float("nan")
    sd, mean = float(d.std(ddof=1)), float(d.mean())
    if sd == 0:
        return float(floor) if mean != 0 else float("inf")
    effect = abs(mean) / sd
    if effect == 0 or t_power(MAX_PAIRS, effect, level) < power:
        return float("inf")
    n = np.arange(2, 201)  # power grows with n: the first n that reaches it, vectorised
    reach = sps.nct.sf(sps.t.ppf(1 - level, n - 1), n - 1, effect * np.sqrt(n)) >= power
    if reach.any():
        first = int(n[np.argmax(reach)])
    else:
        lo, hi = 201, MAX_PAIRS
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if t_power(mid, effect, level) >= power else (mid + 1, hi)
        first = lo
    first = first / (3 / math.pi if test == "wilcoxon" else 1.0)  # Wilcoxon: efficiency vs t
    return float(max(floor, math.ceil(first)))
