"""loader -> (stub) model -> scorer for each paper benchmark, with hand-computed scores.

The stub model answers from a table keyed by question id, the way the harness hands predictions
(generated text, or the chosen candidate for closed-set benchmarks) to `Benchmark.score`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.registry import LoadContext


def run(name: str, root: Path, answers: dict[str, str]) -> dict[str, float]:
    benchmark = registry.get(name)
    examples = benchmark.load(LoadContext(root))
    predictions = [answers[ex.qid] for ex in examples]
    metrics = benchmark.score(examples, predictions)
    assert naming.HEADLINE_METRIC[name] in metrics  # the harness logs <name>/<headline>
    return metrics


def test_vqav2(paper_root: Path) -> None:
    # "Two" -> "2" matches 9 of 10 (1.0); "Yes." -> "yes" (1.0); "red" has 2 of 10 annotators (0.6)
    metrics = run("vqav2", paper_root, {"420": "Two", "421": "Yes.", "70": "red"})
    assert metrics["accuracy"] == pytest.approx(2.6 / 3)
    assert metrics["accuracy_number"] == pytest.approx(1.0)
    assert metrics["accuracy_yes_no"] == pytest.approx(1.0)
    assert metrics["accuracy_other"] == pytest.approx(0.6)


def test_gqa(paper_root: Path) -> None:
    assert run("gqa", paper_root, {"20968379": "Left.", "20968380": "yes"}) == {"accuracy": 0.5}


def test_vizwiz(paper_root: Path) -> None:
    answers = {"VizWiz_val_00000000": "Soup", "VizWiz_val_00000001": "Unanswerable", "VizWiz_val_00000002": "no"}
    metrics = run("vizwiz", paper_root, answers)
    assert metrics["accuracy"] == pytest.approx((0.6 + 1.0 + 0.0) / 3)
    assert metrics["answerable_accuracy"] == pytest.approx(0.3)
    assert metrics["unanswerable_accuracy"] == pytest.approx(1.0)


def test_textvqa(paper_root: Path) -> None:
    assert run("textvqa", paper_root, {"34602": "Dakota", "34603": "go"})["accuracy"] == pytest.approx(0.5)


def test_refcoco(paper_root: Path) -> None:
    # target [0.1, 0.1, 0.5, 0.5]: exact box (IoU 1) and a box of IoU 0.375 (wrong at 0.5)
    metrics = run("refcoco", paper_root, {"1_5": "[0.1, 0.1, 0.5, 0.5]", "1_6": "[0.1, 0.1, 0.5, 0.25]"})
    assert metrics == {"acc_iou50": 0.5, "unparsable": 0.0}


def test_refcoco_plus_unparsable_is_wrong(paper_root: Path) -> None:
    assert run("refcoco+", paper_root, {"0": "the dog on the left"}) == {"acc_iou50": 0.0, "unparsable": 1.0}


def test_refcocog(paper_root: Path) -> None:
    metrics = run("refcocog", paper_root, {"1_5": "[0.1, 0.1, 0.5, 0.5]", "1_6": "The box is [0.1,0.1,0.5,0.45]."})
    assert metrics["acc_iou50"] == pytest.approx(1.0)  # second IoU 0.875


def test_ocid_ref_threshold_is_quarter(paper_root: Path) -> None:
    # IoU 0.32 counts at 0.25 (it would not at 0.5); IoU 0.2 does not
    metrics = run("ocid_ref", paper_root, {"0": "[0.25, 0.25, 0.5, 0.33]", "1": "[0, 0, 0.5, 0.2]"})
    assert metrics["acc_iou25"] == pytest.approx(0.5)
    assert metrics["acc_iou25_min_clutter"] == pytest.approx(1.0)
    assert metrics["acc_iou25_max_clutter"] == pytest.approx(0.0)


def test_vsr(paper_root: Path) -> None:
    examples = registry.get("vsr").load(LoadContext(paper_root))
    assert registry.get("vsr").score(examples, ["True", "True"]) == {"accuracy": 0.5}


def test_tallyqa(paper_root: Path) -> None:
    metrics = run("tallyqa", paper_root, {"30000001": "C", "30000002": "B", "30000003": "L"})
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["simple_accuracy"] == pytest.approx(1.0)
    assert metrics["complex_accuracy"] == pytest.approx(0.5)


def test_pope(paper_root: Path) -> None:
    answers = {
        "adversarial-1": "Yes", "adversarial-2": "No",  # both right
        "popular-1": "Yes", "popular-2": "Yes",  # always yes
        "random-1": "No", "random-2": "No",  # always no
    }  # fmt: skip
    metrics = run("pope", paper_root, answers)
    assert metrics["adversarial_accuracy"] == pytest.approx(1.0)
    assert metrics["popular_accuracy"] == pytest.approx(0.5)
    assert metrics["popular_f1"] == pytest.approx(2 / 3)
    assert metrics["popular_yes_ratio"] == pytest.approx(1.0)
    assert metrics["random_precision"] == 0.0 and metrics["random_yes_ratio"] == 0.0
    assert metrics["accuracy"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)  # mean over the three splits
    assert metrics["yes_ratio"] == pytest.approx(0.5)


def test_ai2d(paper_root: Path) -> None:
    metrics = run("ai2d", paper_root, {"1.png-0": "B", "1.png-1": "A", "10.png-0": "A"})
    assert metrics == {"accuracy": pytest.approx(2 / 3)}


def test_scorer_rejects_missing_predictions(paper_root: Path) -> None:
    examples = registry.get("gqa").load(LoadContext(paper_root))
    with pytest.raises(ValueError, match="one prediction per example"):
        registry.get("gqa").score(examples, ["left"])
