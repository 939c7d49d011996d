"""Calibration of the report's verdicts: does it call noise noise, and a real effect real?

- `aa_check(results)`: the A/A check. Within each configuration the runs differ only in their seed;
  relabel them at random as replicates "r0", "r1", ... and compare the replicates as if they were an
  axis (paired on the configuration, with the report's test and correction). Every verdict is then
  false, so the share of resamples with none estimates 1 - FWER; it should be >= 1 - alpha, and
  the issue this answers asks for at least 95 %. Works on a real sweep run with `seed=0,1,2`.
- `simulate_sweep(...)`: generated sweep results with the noise of real tiny runs (binomial
  sampling of each benchmark's questions, a run-to-run training spread shared in part by all
  benchmarks of a run, heavy tails) and planted effects of known size.
- `detections(...)`: how often a planted effect gets its verdict, and how often anything else does.

    from analysis import load_store
    from analysis.calibration import aa_check
    print(aa_check(load_store("sqlite:///mlflow.db")).share_clean)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.comparisons import compare
from analysis.results import AnalysisError, Results
from analysis.stats import run_zscores

DECIDED = ("better", "worse")


def verdicts(results: Results, test: str = "t", alpha: float = 0.01,
             correction: str = "holm") -> pd.DataFrame:
    """The comparisons table of `results` alone (what the report's verdicts come from; the
    pairs-needed estimates left out)."""
    keys, benches = results.config_columns, results.benchmarks
    means = results.runs.groupby(keys, dropna=False)[benches].mean() if keys else \
        results.runs[benches].mean().to_frame().T
    runs = run_zscores(results, means)  # the reference configurations() gives, without its CIs
    return compare(results, runs, None, test, alpha, 0.95, correction, needs=False)


@dataclass
class AAResult:
    resamples: int
    clean: int  # resamples without any verdict
    false_verdicts: pd.Series = field(default_factory=pd.Series)  # per metric: resamples flagging it

    @property
    def share_clean(self) -> float:
        return self.clean / self.resamples if self.resamples else float("nan")


def replicate_results(results: Results, rng: np.random.Generator) -> Results:
    """`results` with the seeds of each configuration shuffled onto labels r0, r1, ... and those
    labels as the only compared axis (pairs match on everything else)."""
    if not results.seed:
        raise AnalysisError("an A/A check needs runs that differ in seed: run the sweep with "
                            "seed=0,1,2")
    keys = results.config_columns
    runs = results.runs.copy()
    labels = pd.Series("", index=runs.index)
    for _, index in (runs.groupby(keys, dropna=False).groups.items() if keys
                     else [(None, runs.index)]):
        order = rng.permutation(len(index))
        labels.loc[index] = [f"r{i}" for i in order]
    runs["replicate"] = labels.to_numpy()
    if runs["replicate"].nunique() < 2:
        raise AnalysisError("an A/A check needs configurations with at least two seeds")
    return Results(runs, ["replicate"], results.benchmarks, context=list(keys), seed=None,
                   metric_names=results.metric_names, source=results.source + " (A/A)")


def aa_check(results: Results, resamples: int = 200, test: str = "t", alpha: float = 0.01,
             correction: str = "holm", seed: int = 0) -> AAResult:
    """The A/A check of `results` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    clean, flagged = 0, pd.Series(0, index=[*results.benchmarks, "zscore_mean"], dtype=int)
    for _ in range(resamples):
        table = verdicts(replicate_results(results, rng), test, alpha, correction)
        hits = table[table["verdict"].isin(DECIDED)]
        clean += hits.empty
        for metric in set(hits["metric"]):
            flagged[metric] += 1
    return AAResult(resamples, clean, flagged)


def simulate_sweep(grid: dict[str, list[str]], seeds: int, base: dict[str, float],
                   effects: dict[tuple[str, str, str], float] | None = None, *,
                   train_sd: float = 2.0, shared: float = 0.5, questions: int = 300,
                   interaction_sd: float = 1.0, tails: float = 4.0,
                   rng: np.random.Generator | None = None) -> Results:
    """Sweep results over `grid` x `seeds` with benchmark scores (percent) around `base`.

    `effects[(axis, option, benchmark)]` adds that many points to every run with that option.
    Each run's score: base + effects + a configuration's own departure (`interaction_sd`, the same
    for all its seeds) + training noise (`train_sd` points, Student-t with `tails` degrees of
    freedom, a share `shared` of it common to all benchmarks of the run), then each benchmark's
    `questions` answers drawn binomially at that rate."""
    rng = rng or np.random.default_rng(0)
    effects = effects or {}
    axes, rows = list(grid), []
    for values in itertools.product(*grid.values()):
        config = dict(zip(axes, values))
        own = {b: rng.normal(0, interaction_sd) for b in base}
        for s in range(seeds):
            common = rng.standard_t(tails) * train_sd
            row = {**config, "seed": str(s)}
            for b, mean in base.items():
                noise = np.sqrt(shared) * common + np.sqrt(1 - shared) * rng.standard_t(tails) * train_sd
                rate = mean + own[b] + noise + sum(v for (a, o, bb), v in effects.items()
                                                   if bb == b and config.get(a) == o)
                rate = float(np.clip(rate, 0.0, 100.0)) / 100
                row[b] = 100.0 * rng.binomial(questions, rate) / questions
            rows.append(row)
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", [f"sim{i}" for i in range(len(frame))])
    return Results(frame, axes, list(base), seed="seed",
                   option_order={a: list(o) for a, o in grid.items()}, source="simulated")


def detections(simulations: int, make: callable, target: tuple[str, str, str] | None,
               direction: str = "better", **kwargs) -> dict[str, float]:
    """Over `simulations` sweeps `make(rng)`: the share where `target` (axis, option, metric) gets
    `direction`, and the share with a verdict anywhere else (false ones when only `target` is
    planted)."""
    rng = np.random.default_rng(kwargs.pop("seed", 0))
    hit = other = 0
    for _ in range(simulations):
        table = verdicts(make(rng), **kwargs)
        decided = table[table["verdict"].isin(DECIDED)]
        is_target = pd.Series(False, index=decided.index)
        if target is not None:
            axis, option, metric = target
            is_target = (decided["axis"] == axis) & (decided["option"] == option) & \
                (decided["metric"].isin([metric, "zscore_mean"]))
            hit += bool(((decided["metric"] == metric) & is_target
                         & (decided["verdict"] == direction)).any())
        other += bool((~is_target).any())
    return {"detected": hit / simulations, "other": other / simulations}
