"""The closed-set scorers against the scikit-learn calls vlm-evaluation's scorers make, on random
seeded data with ties (scikit-learn comes with the test extra; the scorers themselves do not need it)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn import metrics

from vlm_sweeps.eval import scoring
from vlm_sweeps.eval.examples import Choice, EvalExample
from vlm_sweeps.eval.families import closed_set


def _probabilities(rng: random.Random, k: int, digits: int) -> list[float]:
    weights = [round(rng.random() ** 3, digits) + 1e-3 for _ in range(k)]  # rounding makes ties
    return [w / sum(weights) for w in weights]


@pytest.mark.parametrize("seed", range(5))
def test_binary_auroc_ap_f1_match_scikit_learn(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(40):
        n = rng.randint(2, 60)
        truth = [True, False] + [rng.random() < 0.4 for _ in range(n - 2)]
        scores = [round(rng.random(), rng.choice([1, 2, 6])) for _ in range(n)]
        said = [rng.random() < 0.5 for _ in range(n)]
        assert scoring.roc_auc(truth, scores) == pytest.approx(metrics.roc_auc_score(truth, scores), abs=1e-12)
        assert scoring.average_precision(truth, scores) == pytest.approx(
            metrics.average_precision_score(truth, scores), abs=1e-12)
        assert scoring.binary_f1(truth, said) == pytest.approx(metrics.f1_score(truth, said, zero_division=0.0))


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_ovo_auroc_and_macro_ap_match_scikit_learn(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(20):
        k = rng.randint(3, 16)
        labels = list(range(k)) + [rng.randrange(k) for _ in range(rng.randint(0, 40))]  # every class present
        probs = [_probabilities(rng, k, rng.choice([1, 3])) for _ in labels]
        array = np.asarray(probs)
        assert scoring.ovo_roc_auc(labels, probs) == pytest.approx(
            metrics.roc_auc_score(labels, array, multi_class="ovo"), abs=1e-9)
        assert scoring.macro_average_precision(labels, probs) == pytest.approx(
            metrics.average_precision_score(labels, array), abs=1e-9)


def test_pope_scorer_matches_vlm_evaluation_pope_scorer() -> None:
    """`PopeScorer.score`: per split argmax accuracy, roc_auc_score / average_precision_score of
    p("Yes"); final accuracy the mean of the splits', final AUROC / AUPR over everything pooled."""
    rng = random.Random(0)
    examples, predictions = [], []
    for split in closed_set.POPE_SPLITS:
        for i in range(40):
            label, probs = rng.choice(["yes", "no"]), _probabilities(rng, 2, 2)
            examples.append(EvalExample(f"{split}-{i}", "q", None, (label,), ("Yes", "No"), mode="closed_set",
                                        meta={"split": split}))
            predictions.append(Choice(("Yes", "No")[int(np.argmax(probs))], probs))
    got = closed_set.score_pope(examples, predictions)
    accuracies, all_truth, all_scores = [], [], []
    for split in closed_set.POPE_SPLITS:
        idx = [i for i, ex in enumerate(examples) if ex.meta["split"] == split]
        truth = [1 if examples[i].answers[0] == "yes" else 0 for i in idx]
        scores = [predictions[i].probabilities[0] for i in idx]
        accuracy = float(np.mean([["yes", "no"][int(np.argmax(predictions[i].probabilities))] == examples[i].answers[0]
                                  for i in idx]))
        assert got[f"{split}_accuracy"] == pytest.approx(accuracy)
        assert got[f"{split}_auroc"] == pytest.approx(metrics.roc_auc_score(truth, scores))
        assert got[f"{split}_aupr"] == pytest.approx(metrics.average_precision_score(truth, scores))
        accuracies.append(accuracy)
        all_truth += truth
        all_scores += scores
    assert got["accuracy"] == pytest.approx(np.mean(accuracies))
    assert got["auroc"] == pytest.approx(metrics.roc_auc_score(all_truth, all_scores))
    assert got["aupr"] == pytest.approx(metrics.average_precision_score(all_truth, all_scores))
