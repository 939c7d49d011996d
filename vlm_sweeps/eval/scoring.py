"""Metric definitions, pure python: what a benchmark's number means.

The paper's numbers were computed by TRI-ML/vlm-evaluation (and the official scorers it carries);
every function used under a paper metric name reproduces that code on the same inputs, edge cases
included, and its docstring names the reference file and function:

- VQAv2, TextVQA, VizWiz, GQA answers: `vlm_sweeps.eval.families.answers` (re-exported here).
- RefCOCO* / OCID-Ref: `vlm_eval/tasks/harnesses/{refcoco,ocidref}.py` (`parse_bbox`,
  `compute_iou`, the gold box rounded to 2 decimals by `box_xywh2xyxy` / `box_xyxy2normalized`).
- POPE: AoiDragon/POPE `evaluate.py` (yes/no read from the first sentence; accuracy, precision,
  recall, F1, yes ratio) and `vlm_eval/tasks/harnesses/pope.py` (`PopeScorer`: AUROC and AUPR).
- Closed-set probabilities (POPE, VSR, TallyQA, AI2D): scikit-learn's `roc_auc_score` (binary, and
  multi-class "ovo" macro) and `average_precision_score` (binary, and multi-class macro), which
  vlm-evaluation's scorers call; re-implemented here so that scorers need no scikit-learn.
- VizWiz unanswerability: `vlm_eval/util/evaluation/vizwiz/eval.py` (`evaluate_unanswerability`:
  `average_precision_score` and `f1_score` on the hard predictions).

The references print percentages rounded to 2 decimals (`round(100 * x, 2)`); metrics here are the
unrounded fractions in 0..1, so `round(100 * ours, 2)` is the reference's figure.

Forgiving variants (`parse_box`, `vqa_soft_accuracy`) exist for the synthetic suite and for
metrics with other names (`lenient_*`); the paper's metric names always use the reference rules.
No torch import: scorers run in the analysis environment and in unit tests.
"""

from __future__ import annotations

import ast
import math
import re
from itertools import combinations
from typing import Sequence

from vlm_sweeps.eval.families.answers import (
    gqa_match,
    normalize_gqa_prediction,
    normalize_textvqa_answer,
    normalize_vizwiz_answer,
    normalize_vqa_answer,
    textvqa_accuracy,
    vizwiz_predicts_unanswerable,
    vizwiz_question_accuracy,
    vqav2_accuracy,
)

Box = tuple[float, float, float, float]

__all__ = [
    "gqa_match", "normalize_gqa_prediction", "normalize_textvqa_answer", "normalize_vizwiz_answer",
    "normalize_vqa_answer", "textvqa_accuracy", "vizwiz_predicts_unanswerable", "vizwiz_question_accuracy",
    "vqav2_accuracy",
]  # fmt: skip


# --- VQA-style accuracy -------------------------------------------------------------------------


def vqa_soft_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """The synthetic suite's VQA score: `vqav2_accuracy`, except that a question with a single answer
    (where the paper's leave-one-out always gives 0) scores the exact match of both normalised
    answers. Not used under any paper metric name."""
    if len(answers) == 1:
        return float(normalize_vqa_answer(prediction) == normalize_vqa_answer(answers[0]))
    return vqav2_accuracy(prediction, answers)


def mean_vqa_accuracy(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean `vqav2_accuracy` over examples (0..1): vlm-evaluation's VQAv2 `accuracy`."""
    check_lengths(predictions, answers)
    return mean([vqav2_accuracy(p, a) for p, a in zip(predictions, answers)])


def vizwiz_accuracy(
    predictions: Sequence[str], answers: Sequence[Sequence[str]], answerable: Sequence[bool]
) -> dict[str, float]:
    """vlm-evaluation's `VizWizScorer.score`: soft accuracy overall and on the answerable /
    unanswerable questions (`answerable` is the dataset's own flag), and the unanswerability
    detection figures of `VQAEval.evaluate_unanswerability`: the positive class is "unanswerable"
    (flag 0), the prediction is positive when it normalises to "unanswerable"; `unanswerable_f1` is
    `f1_score` on those hard predictions and `unanswerable_ap` `average_precision_score` with the
    hard predictions as scores. A subset with no question scores 0.0; AP is left out when no
    question is unanswerable (undefined there)."""
    check_lengths(predictions, answers)
    check_lengths(predictions, answerable)
    scores = [vizwiz_question_accuracy(p, a) for p, a in zip(predictions, answers)]
    truth = [not ok for ok in answerable]
    said = [vizwiz_predicts_unanswerable(p) for p in predictions]
    metrics = {
        "accuracy": mean(scores),
        "answerable_accuracy": mean([s for s, ok in zip(scores, answerable) if ok]),
        "unanswerable_accuracy": mean([s for s, ok in zip(scores, answerable) if not ok]),
        "unanswerable_f1": binary_f1(truth, said),
    }
    ap = average_precision(truth, [float(s) for s in said])
    if ap is not None:
        metrics["unanswerable_ap"] = ap
    return metrics


def split_answerable(answerable: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Indices of the answerable and of the unanswerable questions, in order."""
    yes = [i for i, ok in enumerate(answerable) if ok]
    no = [i for i, ok in enumerate(answerable) if not ok]
    return yes, no


def choice_accuracy(predictions: Sequence[str], answers: Sequence[str]) -> float:
    """Fraction of closed-set predictions equal to the answer (case and outer spaces ignored). The
    prediction is the candidate with the highest probability, so this is vlm-evaluation's
    `argmax(probabilities) == label` exact match."""
    check_lengths(predictions, answers)
    return mean([float(p.strip().casefold() == a.strip().casefold()) for p, a in zip(predictions, answers)])


# --- Referring expressions: boxes -------------------------------------------------------------


def parse_box_literal(text: str) -> Box | None:
    """vlm-evaluation's `parse_bbox` (harnesses/refcoco.py and ocidref.py): the whole generated text
    must be a Python list literal (`ast.literal_eval`) of four numbers in 0..1 with x1 < x2 and
    y1 < y2; anything else (prose around the box, a tuple, a missing bracket, pixel values) is an
    invalid answer, which scores as wrong."""
    try:
        box = ast.literal_eval(text)
        if not (isinstance(box, list) and len(box) == 4):
            return None
        if not all(0 <= v <= 1 for v in box) or not (box[0] < box[2] and box[1] < box[3]):
            return None
        return (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BOX = re.compile(r"\[\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")")


def parse_box(text: str) -> Box | None:
    """A forgiving box reader (synthetic suite, `lenient_*` metrics; never a paper metric): the first
    `[x1, y1, x2, y2]` anywhere in the text ("The box is [0.1, 0.2, 0.5, 0.6]."), closing bracket
    optional; None for fewer than four numbers, values outside 0..1, or x1 >= x2 / y1 >= y2."""
    match = _BOX.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in match.groups())
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)) or x1 >= x2 or y1 >= y2:
        return None
    return (x1, y1, x2, y2)


def round_box(box: Sequence[float]) -> Box:
    """The gold box as vlm-evaluation stores it: each normalised coordinate `round(v, 2)` (Python's
    rounding of the binary value: 0.125 -> 0.12, 0.135 -> 0.14)."""
    x1, y1, x2, y2 = (round(float(v), 2) for v in box)
    return (x1, y1, x2, y2)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """vlm-evaluation's `compute_iou` for `[x1, y1, x2, y2]` boxes (0.0 when the union is empty,
    where the reference would divide by zero; a parsed box always has a positive area)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def refer_accuracy(predictions: Sequence[str], boxes: Sequence[Sequence[float]], threshold: float,
                   *, lenient: bool = False) -> float:
    """Share of generated answers whose box has IoU >= `threshold` with the target (0.5 RefCOCO*,
    0.25 OCID-Ref), as `RefCOCOScorer` / `OCIDRefScorer` count it; invalid answers are wrong.
    `lenient=True` reads boxes with `parse_box` instead (for `lenient_*` metrics only)."""
    check_lengths(predictions, boxes)
    parse = parse_box if lenient else parse_box_literal
    hits = []
    for text, target in zip(predictions, boxes):
        box = parse(text)
        hits.append(float(box is not None and box_iou(box, target) >= threshold))
    return mean(hits)


# --- POPE ---------------------------------------------------------------------------------------


def pope_yes_no(text: str) -> str:
    """POPE `evaluate.py`: "no" if the first sentence has the word "No", "no" or "not" (commas
    removed, split on single spaces), otherwise "yes". On the closed-set candidates "Yes" / "No" it is
    vlm-evaluation's argmax over their probabilities."""
    words = text.split(".")[0].replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """POPE `evaluate.py`: accuracy, precision, recall, f1 and yes_ratio, "yes" the positive class.

    Labels are "yes"/"no" (anything but "no" is yes, as in the reference). Where the reference would
    divide by zero (no predicted or no actual yes), the figure is 0.0.
    """
    check_lengths(predictions, labels)
    pred = [pope_yes_no(p) == "yes" for p in predictions]
    gold = [label.strip().lower() != "no" for label in labels]
    tp = sum(p and g for p, g in zip(pred, gold))
    fp = sum(p and not g for p, g in zip(pred, gold))
    tn = sum(not p and not g for p, g in zip(pred, gold))
    fn = sum(not p and g for p, g in zip(pred, gold))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    n = len(pred)
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": sum(pred) / n if n else 0.0,
    }


# --- Ranking metrics from candidate probabilities ---------------------------------------------


def _ranked_groups(truth: Sequence[bool], scores: Sequence[float]) -> list[tuple[int, int]]:
    """(positives, negatives) per distinct score, highest score first (tied scores form one group,
    as the thresholds of scikit-learn's `_binary_clf_curve`)."""
    groups: dict[float, list[int]] = {}
    for t, s in zip(truth, scores):
        g = groups.setdefault(float(s), [0, 0])
        g[0 if t else 1] += 1
    return [(groups[s][0], groups[s][1]) for s in sorted(groups, reverse=True)]


def roc_auc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """scikit-learn `roc_auc_score` (binary): the area under the ROC curve, i.e. the probability that
    a random positive outscores a random negative, ties counting one half. None when only one class
    is present (scikit-learn raises there)."""
    check_lengths(truth, scores)
    groups = _ranked_groups(truth, scores)
    n_pos, n_neg = sum(g[0] for g in groups), sum(g[1] for g in groups)
    if n_pos == 0 or n_neg == 0:
        return None
    area, negatives_above = 0.0, 0
    for pos, neg in groups:
        area += pos * (negatives_above + neg / 2)
        negatives_above += neg
    return 1.0 - area / (n_pos * n_neg)


def average_precision(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """scikit-learn `average_precision_score` (binary), what vlm-evaluation logs as "AUCPR": the sum
    over distinct score thresholds (highest first) of (recall gained) x (precision there). None when
    there is no positive (undefined)."""
    check_lengths(truth, scores)
    groups = _ranked_groups(truth, scores)
    n_pos = sum(g[0] for g in groups)
    if n_pos == 0:
        return None
    ap, tp, fp = 0.0, 0, 0
    for pos, neg in groups:
        tp, fp = tp + pos, fp + neg
        ap += (pos / n_pos) * (tp / (tp + fp))
    return ap


def ovo_roc_auc(labels: Sequence[int], probabilities: Sequence[Sequence[float]]) -> float | None:
    """scikit-learn `roc_auc_score(labels, probabilities, multi_class="ovo")` (macro): for every pair
    of classes a, b, the examples of either class, the mean of AUC(a vs b on column a) and AUC(b vs a
    on column b); then the mean over pairs. Classes are those present in `labels` (scikit-learn
    requires every column's class to be present; with all present the two agree). None with fewer
    than two classes present."""
    check_lengths(labels, probabilities)
    classes = sorted(set(labels))
    if len(classes) < 2:
        return None
    pairs = []
    for a, b in combinations(classes, 2):
        rows = [i for i, y in enumerate(labels) if y in (a, b)]
        auc_a = roc_auc([labels[i] == a for i in rows], [probabilities[i][a] for i in rows])
        auc_b = roc_auc([labels[i] == b for i in rows], [probabilities[i][b] for i in rows])
        pairs.append((auc_a + auc_b) / 2)  # type: ignore[operator]  # both classes are present
    return mean(pairs)


def macro_average_precision(labels: Sequence[int], probabilities: Sequence[Sequence[float]]) -> float | None:
    """scikit-learn `average_precision_score(labels, probabilities)` for multi-class labels: the mean
    over classes of the one-vs-rest average precision of the class's column. Classes are those
    present in `labels` (as for `ovo_roc_auc`). None when `labels` is empty."""
    check_lengths(labels, probabilities)
    classes = sorted(set(labels))
    if not classes:
        return None
    per_class = [average_precision([y == c for y in labels], [p[c] for p in probabilities]) for c in classes]
    return mean([v for v in per_class if v is not None])


def binary_f1(truth: Sequence[bool], predicted: Sequence[bool]) -> float:
    """scikit-learn `f1_score` (binary, positive class True): 2TP / (2TP + FP + FN); 0.0 when there
    is no actual and no predicted positive (scikit-learn's zero_division default)."""
    check_lengths(truth, predicted)
    tp = sum(t and p for t, p in zip(truth, predicted))
    wrong = sum(t != p for t, p in zip(truth, predicted))
    return 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0


def ranking_metrics(labels: Sequence[int], probabilities: Sequence[Sequence[float]]) -> dict[str, float]:
    """`auroc` and `aupr` of closed-set probabilities as vlm-evaluation's scorers compute them: with
    two candidates (POPE, VSR) the binary figures of the first candidate ("Yes", "True": label 0 is
    the positive class); with more (TallyQA, AI2D) the multi-class "ovo" AUROC and macro AP. A figure
    that is undefined on these examples (a single class present) is left out."""
    if probabilities and len(probabilities[0]) == 2:
        truth = [y == 0 for y in labels]
        first = [p[0] for p in probabilities]
        values = {"auroc": roc_auc(truth, first), "aupr": average_precision(truth, first)}
    else:
        values = {"auroc": ovo_roc_auc(labels, probabilities), "aupr": macro_average_precision(labels, probabilities)}
    return {k: v for k, v in values.items() if v is not None and not math.isnan(v)}


# --- helpers --------------------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; 0.0 for no values (an empty subset scores 0.0 rather than failing)."""
    return sum(values) / len(values) if values else 0.0


def check_lengths(predictions: Sequence[object], targets: Sequence[object]) -> None:
    """One prediction per example, or a ValueError that says so (zip would silently truncate)."""
    if len(predictions) != len(targets):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(targets)} examples; "
            "the harness must return exactly one prediction per example, in order"
        )
