"""Statistics against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.comparisons import compare, one_sided, paired_differences, verdict
from analysis.effects import anova, main_effects
from analysis.power import adjust, pairs_needed, t_power
from analysis.results import Results
from analysis.stats import ZMEAN, ci_halfwidth, configurations, option_means, run_zscores, zscores
from analysis.summary import analyze


def results(rows: list[dict], axes: list[str], benchmarks: list[str], seed: str | None = "seed",
            context: list[str] | None = None) -> Results:
    frame = pd.DataFrame(rows)
    frame.insert(0, "run", [f"r{i}" for i in range(len(frame))])
    return Results(frame, axes, benchmarks, context or [], seed=seed)


def test_zscores_use_population_std_and_mean_over_benchmarks():
    scores = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 10.0, 40.0]})
    z = zscores(scores)
    # a: mean 2, std sqrt(2/3) = 0.81650 -> -1.22474, 0, +1.22474
    assert z["a"].tolist() == pytest.approx([-1.224745, 0.0, 1.224745], abs=1e-6)
    # b: mean 20, std sqrt((100 + 100 + 400) / 3) = 14.1421 -> -0.70711, -0.70711, +1.41421
    assert z["b"].tolist() == pytest.approx([-0.707107, -0.707107, 1.414214], abs=1e-6)
    assert z.mean(axis=1).tolist() == pytest.approx([-0.965926, -0.353553, 1.319479], abs=1e-6)


def test_zscore_of_a_benchmark_without_spread_is_zero():
    z = zscores(pd.DataFrame({"a": [5.0, 5.0], "b": [1.0, np.nan]}))
    assert z["a"].tolist() == [0.0, 0.0]
    assert z["b"].iloc[0] == 0.0 and math.isnan(z["b"].iloc[1])


def test_ci_halfwidth_is_student_t():
    # [0.5, 0.7]: sd 0.141421, sem 0.1, t(0.975, 1) = 12.7062 -> 1.27062
    assert ci_halfwidth([0.5, 0.7]) == pytest.approx(1.270620, abs=1e-5)
    # [1, 2, 3]: sd 1, sem 0.57735, t(0.975, 2) = 4.30265 -> 2.48414
    assert ci_halfwidth([1, 2, 3]) == pytest.approx(2.484138, abs=1e-5)
    assert math.isnan(ci_halfwidth([4.0]))


def test_seeds_grouped_into_mean_and_ci_then_ranked():
    rows = [{"enc": "a", "seed": "0", "x": 10.0}, {"enc": "a", "seed": "1", "x": 12.0},
            {"enc": "b", "seed": "0", "x": 20.0}, {"enc": "b", "seed": "1", "x": 20.0},
            {"enc": "c", "seed": "0", "x": 30.0}]
    table = configurations(results(rows, ["enc"], ["x"]))
    assert table["enc"].tolist() == ["c", "b", "a"]
    assert table["n_runs"].tolist() == [1, 2, 2]
    assert table["x"].tolist() == [30.0, 20.0, 11.0]
    # a: [10, 12], sem 1, t(0.975, 1) = 12.7062
    assert table["x_ci"].iloc[2] == pytest.approx(12.706205, abs=1e-5)
    assert table["x_ci"].iloc[1] == 0.0 and math.isnan(table["x_ci"].iloc[0])
    # z over the configuration means 11, 20, 30: mean 20.3333, std 7.76030
    assert table[ZMEAN].tolist() == pytest.approx([1.245657, -0.042954, -1.202703], abs=1e-5)
    assert table["rank"].tolist() == [1, 2, 3]


def test_run_zscores_average_to_the_configuration_zscore():
    values = [("a", "0", 1.0, 5.0), ("a", "1", 3.0, 7.0), ("b", "0", 4.0, 5.0),
              ("b", "1", 6.0, 9.0)]
    rows = [{"enc": e, "seed": s, "x": v, "y": w} for e, s, v, w in values]
    res = results(rows, ["enc"], ["x", "y"])
    table = configurations(res)
    runs = run_zscores(res, table)
    per_config = runs.groupby("enc")[ZMEAN].mean()
    assert per_config["a"] == pytest.approx(table.set_index("enc").loc["a", ZMEAN])
    assert per_config["b"] == pytest.approx(table.set_index("enc").loc["b", ZMEAN])


def test_option_means_marginalise_the_other_axes():
    rows = [{"enc": e, "res": r, "seed": "0", "x": v} for e, r, v in
            [("a", "n", 10.0), ("a", "l", 20.0), ("b", "n", 30.0), ("b", "l", 50.0)]]
    res = results(rows, ["enc", "res"], ["x"])
    table = option_means(res, configurations(res), "enc")
    assert table.set_index("enc")["x"].to_dict() == {"a": 15.0, "b": 40.0}
    assert table["n_configs"].tolist() == [2, 2]


def test_wilcoxon_and_t_one_sided_hand_values():
    # all 3 differences positive: W+ = 6 is the largest of 2^3 sign patterns -> p = 1/8
    assert one_sided([1.0, 2.0, 3.0], "wilcoxon") == pytest.approx((0.125, 1.0))
    # paired t: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 with 2 df;
    # P(T > t) = (1 - t / sqrt(t^2 + 2)) / 2 = (1 - 3.4641 / 3.74166) / 2 = 0.037090
    p_gt, p_lt = one_sided([1.0, 2.0, 3.0], "t")
    assert p_gt == pytest.approx(0.037090, abs=1e-6)
    assert p_lt == pytest.approx(1 - 0.037090, abs=1e-6)
    # a zero difference is dropped by Wilcoxon: [0, 2, 3, 4] behaves as n = 3
    assert one_sided([0.0, 2.0, 3.0, 4.0], "wilcoxon")[0] == pytest.approx(0.125)
    # 7 positive pairs: 1/128 = 0.0078 < 0.01
    assert one_sided(np.arange(1.0, 8.0), "wilcoxon")[0] == pytest.approx(1 / 128)


def test_verdicts_say_why_there_is_no_p_value():
    assert verdict([], float("nan"), float("nan"), "wilcoxon", 0.01) == "no pairs"
    zeros = [0.0, 0.0]
    assert verdict(zeros, *one_sided(zeros, "wilcoxon"), "wilcoxon", 0.01) == "no difference"
    assert verdict([1.0], *one_sided([1.0], "t"), "t", 0.01) == "underpowered (n=1)"
    assert verdict([2.0, 2.0], *one_sided([2.0, 2.0], "t"), "t", 0.01) == "constant difference"
    # Wilcoxon's smallest p with 3 pairs is 1/8: it can never reach 0.01
    assert verdict([1.0, 2.0, 3.0], 0.125, 1.0, "wilcoxon", 0.01) == "underpowered (n=3)"
    d = np.arange(1.0, 8.0)
    assert verdict(d, *one_sided(d, "wilcoxon"), "wilcoxon", 0.01) == "better"
    assert verdict(-d, *one_sided(-d, "wilcoxon"), "wilcoxon", 0.01) == "worse"
    # 7 pairs reach 0.01 but not a corrected first step of 0.01 / 20 = 0.0005 (needs 2^-n < it: 11)
    assert verdict(d, 0.02, 0.98, "wilcoxon", 0.01, level=0.0005) == "underpowered (n=7)"
    # the t-test can reach any level from 2 pairs: the same numbers are just not significant
    assert verdict(d, 0.02, 0.98, "t", 0.01, level=0.0005) == "n.s."


def test_holm_adjusts_by_hand():
    # sorted p 0.01, 0.02, 0.03, 0.5 with m = 4: 0.04, max(0.04, 0.06), max(.., 0.06), 0.5
    p = np.array([0.03, 0.01, 0.5, 0.02])
    assert adjust(p, "holm").tolist() == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert adjust(p, "bonferroni").tolist() == pytest.approx([0.12, 0.04, 1.0, 0.08])
    assert adjust(p, "none").tolist() == pytest.approx(p.tolist())
    # NaN is no hypothesis: m = 2
    assert adjust(np.array([0.01, np.nan, 0.04]), "holm").tolist()[::2] == pytest.approx([0.02, 0.04])


def test_the_family_is_one_axis_both_directions():
    """Two options x (x, zscore_mean) x 2 directions = 8 hypotheses on enc; raw p-values kept."""
    rows = [{"enc": e, "res": r, "seed": "0", "x": v} for e, r, v in
            [("a", "n", 10.0), ("b", "n", 20.0), ("c", "n", 10.5), ("a", "l", 11.0),
             ("b", "l", 22.0), ("c", "l", 11.0), ("a", "m", 12.0), ("b", "m", 22.5),
             ("c", "m", 13.0)]]
    res = results(rows, ["enc", "res"], ["x"])
    table = compare(res, run_zscores(res, configurations(res)), {"enc": "a"}, test="t")
    enc = table[table.axis == "enc"].set_index(["option", "metric"])
    raw = np.concatenate([enc["p_greater"], enc["p_less"]])
    expected = adjust(raw, "holm")
    got = np.fmin(expected[:4], expected[4:])
    assert enc["p_adjusted"].to_numpy() == pytest.approx(got)
    # b - a = [10, 11, 10.5]: t = 10.5 / (0.5 / sqrt 3) = 36.4 with 2 df: raw p = 3.8e-4; 8
    # hypotheses: adjusted 3.0e-3 < 0.01
    assert enc.loc[("b", "x"), "p_greater"] == pytest.approx(3.77e-4, rel=0.01)
    assert enc.loc[("b", "x"), "verdict"] == "better"
    assert set(table["correction"]) == {"holm"}


def test_pairs_needed_for_the_observed_effect():
    # effect 1 sd: a one-sided t-test at 0.01 with power 0.8 needs 13 pairs (noncentral t)
    d = np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # mean 2, sd 1.58: effect 1.26
    n = pairs_needed(d, "t", 0.01)
    assert t_power(int(n), 2 / d.std(ddof=1), 0.01) >= 0.8 > t_power(int(n) - 1, 2 / d.std(ddof=1), 0.01)
    assert pairs_needed(np.array([1.0, -1.0, 1.0, -1.0]), "t", 0.01) == float("inf")
    assert pairs_needed(np.array([1.0, 1.0]), "wilcoxon", 0.01) == 7  # 2^-7 < 0.01
    # a seed of this sweep adds 2 pairs: seeds_needed = ceil(pairs_needed / 2)
    rows = [{"enc": e, "res": r, "seed": s, "x": v + (1.0 if e == "b" else 0.0) * (1 + int(s))}
            for e in "ab" for r, v in (("n", 10.0), ("l", 12.0)) for s in ("0", "1")]
    res = results(rows, ["enc", "res"], ["x"])
    row = compare(res, run_zscores(res, configurations(res)), {"enc": "a"}).iloc[0]
    assert row.n_pairs == 4 and row.seeds_needed == math.ceil(row.pairs_needed / 2)


def test_pairs_match_other_axes_and_seed():
    # baseline a vs b; pairs on (res, seed); ("l", "1") has no partner for b
    values = [("a", "n", "0", 10.0), ("b", "n", "0", 13.0), ("a", "n", "1", 11.0),
              ("b", "n", "1", 15.0), ("a", "l", "0", 20.0), ("b", "l", "0", 25.0),
              ("a", "l", "1", 99.0)]
    rows = [{"enc": e, "res": r, "seed": s, "x": x} for e, r, s, x in values]
    res = results(rows, ["enc", "res"], ["x"])
    diffs = paired_differences(res, res.runs, "enc", "a", "b", ["x"])
    assert sorted(diffs["x"].tolist()) == [3.0, 4.0, 5.0]
    table = compare(res, run_zscores(res, configurations(res)), {"enc": "a"}, test="t")
    row = table[(table.axis == "enc") & (table.metric == "x")].iloc[0]
    assert row.n_pairs == 3 and row.mean_delta == pytest.approx(4.0)
    # d = [3, 4, 5]: sd 1, t = 4 * sqrt 3 = 6.9282, 2 df -> P(T > t) = (1 - t/sqrt(t^2+2)) / 2
    t = 4 * math.sqrt(3)
    assert row.p_greater == pytest.approx((1 - t / math.sqrt(t * t + 2)) / 2, rel=1e-6)
    assert row.ci_low == pytest.approx(4.0 - 2.484138, abs=1e-5)


def factorial() -> Results:
    """2 x 2 design, 2 seeds: y = 4 + a-effect (-2/+2) + b-effect (-1/+1) +- 0.5."""
    rows = []
    for a, ea in (("a1", -2.0), ("a2", 2.0)):
        for b, eb in (("b1", -1.0), ("b2", 1.0)):
            for seed, noise in (("0", -0.5), ("1", 0.5)):
                rows.append({"A": a, "B": b, "seed": seed, "y": 4 + ea + eb + noise})
    return results(rows, ["A", "B"], ["y"])


def test_main_effects_of_a_balanced_factorial():
    res = factorial()
    runs = res.runs.assign(**{ZMEAN: res.runs["y"]})  # test the fit on y itself
    eff = main_effects(res, runs).set_index(["axis", "option"])["y"]
    assert eff.to_dict() == pytest.approx({("A", "a1"): -2.0, ("A", "a2"): 2.0,
                                           ("B", "b1"): -1.0, ("B", "b2"): 1.0})


def test_anova_f_test_by_hand():
    res = factorial()
    runs = res.runs.assign(**{ZMEAN: res.runs["y"]})
    table = anova(res, runs).set_index("axis")
    # RSS of the additive model = 8 runs x 0.5^2 = 2 with 8 - 3 = 5 df.
    # SS_A = 8 x 2^2 = 32 (1 df) -> F = 32 / (2 / 5) = 80; SS_B = 8 x 1^2 = 8 -> F = 20
    assert table.loc["A", "sum_sq"] == pytest.approx(32.0)
    assert table.loc["A", "F"] == pytest.approx(80.0)
    assert table.loc["B", "F"] == pytest.approx(20.0)
    assert table.loc["A", "df_resid"] == 5
    from scipy import stats
    assert table.loc["A", "p_value"] == pytest.approx(stats.f.sf(80.0, 1, 5))


def test_analyze_bundles_dataframes_and_checks_baselines():
    res = factorial()
    a = analyze(res, {"A": "a2"})
    assert set(a.options) == {"A", "B"}
    assert set(a.comparisons[a.comparisons.axis == "A"]["baseline"]) == {"a2"}
    with pytest.raises(Exception, match="options of A: a1, a2"):
        analyze(res, {"A": "nope"})
