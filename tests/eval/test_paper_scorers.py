"""loader -> (stub) model -> scorer for each paper benchmark: the metrics the suite logs, with values
worked out by hand from the reference rules (see tests/eval/test_scoring.py for the rule-level cases).

The stub model answers from a table keyed by question id, the way the harness hands predictions to
`Benchmark.score`: generated text, or, for closed-set benchmarks, the chosen candidate as a `Choice`
carrying every candidate's probability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.examples import Choice
from vlm_sweeps.eval.registry import LoadContext


def run(name: str, root: Path, answers: dict[str, str]) -> dict[str, float]:
    benchmark = registry.get(name)
    examples = benchmark.load(LoadContext(root))
    predictions = [answers[ex.qid] for ex in examples]
    metrics = benchmark.score(examples, predictions)
    assert naming.HEADLINE_METRIC[name] in metrics  # the harness logs <name>/<headline>
    return metrics


def letters(probabilities: dict[str, float], n: int) -> tuple[float, ...]:
    """Probabilities over the letters A.. of an n-way question (unlisted letters: 0)."""
    return tuple(probabilities.get(chr(ord("A") + i), 0.0) for i in range(n))


def choose(probabilities: tuple[float, ...], n: int) -> Choice:
    best = max(range(n), key=lambda k: (probabilities[k], -k))
    return Choice(chr(ord("A") + best), probabilities)


def test_vqav2(paper_root: Path) -> None:
    # "Two" -> "2" matches 9 of 10 (1.0); "Yes." -> "yes" (1.0); "red" has 2 of 10 annotators (0.6);
    # "don't know" keeps its apostrophe and matches all ten (1.0; the 2015 tables gave 0.0)
    metrics = run("vqav2", paper_root, {"420": "Two", "421": "Yes.", "70": "red", "71": "don't know"})
    assert metrics == pytest.approx(
        {"accuracy": 3.6 / 4, "accuracy_number": 1.0, "accuracy_yes_no": 1.0, "accuracy_other": 0.8})


def test_gqa(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["gqa"](tmp_path, edge_cases=True)
    # "Left." -> "left" and "No" -> "no" match; "t-shirt" -> "tshirt" never equals the answer "t-shirt"
    assert run("gqa", tmp_path, {"20968379": "Left.", "20968380": "No", "20968381": "t-shirt"}) == pytest.approx(
        {"accuracy": 2 / 3})


def test_vizwiz(paper_root: Path) -> None:
    answers = {"VizWiz_val_00000000": "Soup", "VizWiz_val_00000001": "Unanswerable",
               "VizWiz_val_00000002": "no", "VizWiz_val_00000003": "unanswerable"}  # fmt: skip
    metrics = run("vizwiz", paper_root, answers)
    # 0.6 (2 of 10 say "soup"), 1.0, 0.0, 1.0 (6 of 10 say "unanswerable" though the flag says answerable)
    assert metrics["accuracy"] == pytest.approx(2.6 / 4)
    assert metrics["answerable_accuracy"] == pytest.approx(1.6 / 3)
    assert metrics["unanswerable_accuracy"] == pytest.approx(1.0)
    # said unanswerable: the 2nd (right) and the 4th (answerable): TP 1, FP 1, FN 0 -> F1 2/3;
    # AP: score 1 holds the TP and the FP (P 1/2) and all the recall -> 1/2
    assert metrics["unanswerable_f1"] == pytest.approx(2 / 3)
    assert metrics["unanswerable_ap"] == pytest.approx(0.5)


def test_vizwiz_compares_raw_answers(tmp_path: Path, writers: dict[str, Any]) -> None:
    writers["vizwiz"](tmp_path, edge_cases=True)  # the last question's answers typed "Unanswerable"
    answers = {f"VizWiz_val_{i:08d}": "unanswerable" for i in range(4)}
    metrics = run("vizwiz", tmp_path, answers)
    assert metrics["answerable_accuracy"] == 0.0 and metrics["unanswerable_accuracy"] == 1.0


def test_textvqa_with_and_without_ocr(paper_root: Path) -> None:
    # "Dakota" matches 7 of 10 (1.0), "go" none, "Coca-Cola's" -> "coca cola 's" as 2 of 10 (0.6)
    plain = run("textvqa", paper_root, {"34602": "Dakota", "34603": "go", "34604": "Coca-Cola's"})
    assert plain == pytest.approx({"accuracy": 1.6 / 3})
    # "DAKOTA." -> "dakota", "Stop" -> "stop", "coca-cola" -> "coca cola" (8 of 10): all 1.0
    ocr = run("textvqa_ocr", paper_root, {"34602": "DAKOTA.", "34603": "Stop", "34604": "coca-cola"})
    assert ocr == pytest.approx({"accuracy": 1.0})


def test_refcoco_accepts_only_a_literal_list(paper_root: Path) -> None:
    # targets [0.1, 0.1, 0.5, 0.5] twice and [0, 0, 0.01, 0.01] (the box [0.004, 0.004, 0.014, 0.014]
    # rounded): exact box; the same box inside prose (invalid, right only for the lenient reader);
    # the unrounded box (IoU 0.006^2 / (2e-4 - 0.006^2) = 0.22 with the rounded target: wrong)
    metrics = run("refcoco", paper_root, {"1_5": "[0.1, 0.1, 0.5, 0.5]", "1_6": "The box is [0.1, 0.1, 0.5, 0.5].",
                                          "3_8": "[0.004, 0.004, 0.014, 0.014]"})
    assert metrics == pytest.approx({"acc_iou50": 1 / 3, "unparsable": 1 / 3, "lenient_acc_iou50": 2 / 3})


def test_refcoco_plus_and_refcocog(paper_root: Path) -> None:
    # no spaces is still a literal; a tuple is not; the rounded target box itself is exact
    plus = run("refcoco+", paper_root, {"1_5": "[0.1,0.1,0.5,0.5]", "1_6": "(0.1, 0.1, 0.5, 0.5)",
                                        "3_8": "[0, 0, 0.01, 0.01]"})
    assert plus == pytest.approx({"acc_iou50": 2 / 3, "unparsable": 1 / 3, "lenient_acc_iou50": 2 / 3})
    # IoU 0.875 (right), IoU 0.375 (wrong), a trailing period (invalid)
    g = run("refcocog", paper_root, {"1_5": "[0.1, 0.1, 0.5, 0.45]", "1_6": "[0.1, 0.1, 0.5, 0.25]",
                                     "3_8": "[0, 0, 0.01, 0.01]."})
    assert g == pytest.approx({"acc_iou50": 1 / 3, "unparsable": 1 / 3, "lenient_acc_iou50": 2 / 3})


def test_ocid_ref_threshold_is_quarter_per_clutter_level(paper_root: Path) -> None:
    # IoU 0.32 counts at 0.25 (min clutter), IoU 0.2 does not (max clutter), and
    # [0.125, 0.1, 0.625, 0.5] against the stored [0.12, 0.1, 0.62, 0.5] has IoU 0.98 (medium)
    metrics = run("ocid_ref", paper_root, {"0": "[0.25, 0.25, 0.5, 0.33]", "1": "[0, 0, 0.5, 0.2]",
                                           "2": "[0.125, 0.1, 0.625, 0.5]"})
    assert metrics == pytest.approx({
        "acc_iou25": 2 / 3, "unparsable": 0.0, "lenient_acc_iou25": 2 / 3,
        "acc_iou25_min_clutter": 1.0, "acc_iou25_medium_clutter": 1.0, "acc_iou25_max_clutter": 0.0})


def test_vsr(paper_root: Path) -> None:
    # p(True) 0.8 on the true statement, 0.6 on the false one: both chosen "True" (accuracy 1/2), but
    # ranked right (AUROC 1, AP 1)
    metrics = run("vsr", paper_root, {"0": Choice("True", (0.8, 0.2)), "1": Choice("True", (0.6, 0.4))})
    assert metrics == pytest.approx({"accuracy": 0.5, "auroc": 1.0, "aupr": 1.0})
    assert run("vsr", paper_root, {"0": "True", "1": "True"}) == {"accuracy": 0.5}  # no probabilities, no ranking


def test_tallyqa(paper_root: Path) -> None:
    probs = {
        "30000001": letters({"C": 0.7, "B": 0.3}, 16),  # count 2 (simple): right
        "30000002": letters({"B": 0.6, "A": 0.4}, 16),  # count 0 (complex): wrong
        "30000003": letters({"L": 0.9, "A": 0.1}, 16),  # count 11 (complex): right
        "30000004": letters({"B": 0.5, "C": 0.5}, 16),  # count 1 (simple): a tie goes to the first, B: right
    }
    metrics = run("tallyqa", paper_root, {q: choose(p, 16) for q, p in probs.items()})
    assert metrics["accuracy"] == pytest.approx(3 / 4)  # pooled: correct / total
    assert metrics["simple_accuracy"] == 1.0 and metrics["complex_accuracy"] == 0.5
    # classes 0, 1, 2, 11: of the 6 pairs only (0, 1) is not ranked perfectly: column 0 puts the 0
    # (.4) above the 1 (0), column 1 puts the 1 (.5) below the 0 (.6) -> 1/2; mean 5.5 / 6
    assert metrics["auroc"] == pytest.approx(5.5 / 6)
    # per class AP: 0 -> 1, 1 -> 1/2 (the 0's .6 outranks it), 2 -> 1, 11 -> 1
    assert metrics["aupr"] == pytest.approx(3.5 / 4)
    assert [metrics[f"{s}_{m}"] for s in ("simple", "complex") for m in ("auroc", "aupr")] == [1.0] * 4


def test_pope(paper_root: Path) -> None:
    answers = {
        "adversarial-1": Choice("Yes", (0.9, 0.1)), "adversarial-2": Choice("No", (0.2, 0.8)),  # both right
        "popular-1": Choice("Yes", (0.6, 0.4)), "popular-2": Choice("Yes", (0.7, 0.3)),  # always yes
        "random-1": Choice("No", (0.3, 0.7)), "random-2": Choice("No", (0.1, 0.9)),  # always no
    }  # fmt: skip
    metrics = run("pope", paper_root, answers)
    assert metrics["adversarial_accuracy"] == pytest.approx(1.0)
    assert metrics["popular_accuracy"] == pytest.approx(0.5)
    assert metrics["popular_f1"] == pytest.approx(2 / 3)
    assert metrics["popular_yes_ratio"] == pytest.approx(1.0)
    assert metrics["random_precision"] == 0.0 and metrics["random_yes_ratio"] == 0.0
    assert metrics["accuracy"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)  # mean over the three splits
    assert metrics["yes_ratio"] == pytest.approx(0.5)
    # p("Yes") of the yes / no question: adversarial .9 / .2, popular .6 / .7, random .3 / .1
    assert (metrics["adversarial_auroc"], metrics["adversarial_aupr"]) == (1.0, 1.0)
    assert (metrics["popular_auroc"], metrics["popular_aupr"]) == pytest.approx((0.0, 0.5))
    assert (metrics["random_auroc"], metrics["random_aupr"]) == (1.0, 1.0)
    # pooled: 7 of the 9 yes/no pairs ranked right; AP: .9 (P 1), .7 no, .6 (P 2/3), .3 (P 3/4), each +1/3 recall
    assert metrics["auroc"] == pytest.approx(7 / 9)
    assert metrics["aupr"] == pytest.approx(1 / 3 + 2 / 9 + 1 / 4)


def test_ai2d_val_test_and_pooled(paper_root: Path) -> None:
    probs = {
        "1.png-0": (0.1, 0.6, 0.2, 0.1),  # test, answer B: right
        "1.png-1": (0.5, 0.1, 0.3, 0.1),  # test, answer C: wrong
        "2.png-0": (0.2, 0.7, 0.05, 0.05),  # val, answer B: right
        "2.png-1": (0.8, 0.1, 0.05, 0.05),  # val, answer A: right
        "10.png-0": (0.4, 0.3, 0.2, 0.1),  # test, answer A: right
    }
    metrics = run("ai2d", paper_root, {q: choose(p, 4) for q, p in probs.items()})
    assert metrics["accuracy"] == pytest.approx(4 / 5)  # AI2D-final: val and test pooled
    assert metrics["test_accuracy"] == pytest.approx(2 / 3) and metrics["val_accuracy"] == 1.0
    # pooled, classes A, B, C: pairs (A, B) 1, (A, C) (1/2 + 1) / 2 (the A at .4 is below the C's .5), (B, C) 1
    assert metrics["auroc"] == pytest.approx(2.75 / 3)
    # per class AP: A .8 (TP), .5 (FP), .4 (TP) -> 1/2 + 1/3; B 1; C 1
    assert metrics["aupr"] == pytest.approx((5 / 6 + 1 + 1) / 3)
    assert metrics["test_auroc"] == pytest.approx(2.5 / 3) and metrics["test_aupr"] == pytest.approx(2.5 / 3)
    assert metrics["val_auroc"] == metrics["val_aupr"] == 1.0


def test_scorer_rejects_missing_predictions(paper_root: Path) -> None:
    examples = registry.get("gqa").load(LoadContext(paper_root))
    with pytest.raises(ValueError, match="one prediction per example"):
        registry.get("gqa").score(examples, ["left"])
