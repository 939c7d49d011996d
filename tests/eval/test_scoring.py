"""The official metrics on inputs where a wrong implementation gives a visibly different number.

Expected values are computed by hand from the reference scripts (VQA `vqaEval.py`, POPE
`evaluate.py`, Prismatic's GQA and RefCOCO scorers).
"""

from __future__ import annotations

import pytest

from vlm_sweeps.eval.scoring import (
    box_iou,
    choice_accuracy,
    exact_match,
    mean_vqa_accuracy,
    normalize_vqa_answer,
    parse_box,
    pope_metrics,
    pope_yes_no,
    refer_accuracy,
    split_answerable,
    vizwiz_accuracy,
    vqa_soft_accuracy,
)


def _answers(agree: int, answer: str = "2", other: str = "3", n: int = 10) -> list[str]:
    return [answer] * agree + [other] * (n - agree)


# --- VQA normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two dogs.", "2 dogs"),  # number word -> digit, trailing period dropped, lowercased
        ("  The  RED\tcar\n", "red car"),  # article dropped, whitespace collapsed
        ("1,000", "1000"),  # comma between digits: all punctuation removed, not spaced
        ("red,white", "red white"),  # comma between letters becomes a space
        ("red, white", "red white"),  # comma before a space is removed
        ("2.5", "2.5"),  # a period followed by a digit stays
        ("yes!", "yes!"),  # "!" is not in the official punctuation list
        ("t-shirt", "t-shirt"),  # neither is "-"
        ("isnt", "isn’t"),  # contraction map, with the official curly apostrophe
        ("don't", "don t"),  # an apostrophe inside a word becomes a space
        ("none", "0"),
        ("an apple", "apple"),
    ],
)
def test_normalize_vqa_answer_follows_official_tables(raw: str, normalised: str) -> None:
    assert normalize_vqa_answer(raw) == normalised


# --- VQA soft accuracy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agree", "expected"),
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_vqa_soft_accuracy_leave_one_out(agree: int, expected: float) -> None:
    # 2 of 10 agree: the two who agree see 1 match (1/3), the eight others see 2 (2/3);
    # (2 * 1/3 + 8 * 2/3) / 10 = 0.6, not the naive min(1, 2/3) = 0.667.
    assert vqa_soft_accuracy("2", _answers(agree)) == pytest.approx(expected)


def test_vqa_soft_accuracy_normalises_the_prediction() -> None:
    assert vqa_soft_accuracy("Two.", _answers(3)) == pytest.approx(0.9)
    assert vqa_soft_accuracy("YES", ["yes"] * 10) == pytest.approx(1.0)
    assert vqa_soft_accuracy("A dog", ["dog"] * 10) == pytest.approx(1.0)
    assert vqa_soft_accuracy("yes, it is", ["yes"] * 10) == 0.0  # no partial credit


def test_vqa_soft_accuracy_only_punctuation_step_on_disagreeing_answers() -> None:
    # Answers disagree -> the official code runs processPunctuation (only) on them:
    # "don't" -> "don t", which is also what the prediction "don't" normalises to.
    assert vqa_soft_accuracy("don't", ["don't"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    # "dont" goes through the contraction map to "don’t" (curly), which matches nothing.
    assert vqa_soft_accuracy("dont", ["don't"] * 3 + ["no"] * 7) == 0.0
    # Disagreeing answers are not lowercased or number-mapped (processDigitArticle is not run on
    # them), so a raw "Two" annotation never matches a prediction.
    assert vqa_soft_accuracy("two", ["Two"] * 3 + ["3"] * 7) == 0.0
    # Identical answers are left untouched: "yes." never equals a normalised prediction.
    assert vqa_soft_accuracy("yes.", ["yes."] * 10) == 0.0
    # ... but with one dissenting annotator the periods are stripped and 9 of 10 match.
    assert vqa_soft_accuracy("yes.", ["yes."] * 9 + ["no"]) == pytest.approx(1.0)


def test_vqa_soft_accuracy_any_number_of_answers() -> None:
    assert vqa_soft_accuracy("Cat.", ["cat"]) == 1.0  # one answer: normalised exact match
    assert vqa_soft_accuracy("dog", ["cat"]) == 0.0
    # three answers, two agree: left out agreeing -> 1/3 each, left out dissenting -> 2/3
    assert vqa_soft_accuracy("cat", ["cat", "cat", "dog"]) == pytest.approx((1 / 3 + 1 / 3 + 2 / 3) / 3)
    with pytest.raises(ValueError, match="at least one"):
        vqa_soft_accuracy("cat", [])


def test_mean_vqa_accuracy_and_length_check() -> None:
    assert mean_vqa_accuracy(["2", "3"], [_answers(2), _answers(10)]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="one prediction per example"):
        mean_vqa_accuracy(["2"], [_answers(2), _answers(2)])


# --- VizWiz -----------------------------------------------------------------------------------


def test_vizwiz_splits_answerable_and_unanswerable() -> None:
    answers = [["unanswerable"] * 10, ["red"] * 2 + ["blue"] * 8, ["red"] * 10]
    metrics = vizwiz_accuracy(["Unanswerable", "red", "blue"], answers, [False, True, True])
    assert metrics["unanswerable_accuracy"] == pytest.approx(1.0)
    assert metrics["answerable_accuracy"] == pytest.approx(0.3)  # (0.6 + 0.0) / 2
    assert metrics["accuracy"] == pytest.approx(1.6 / 3)
    assert split_answerable([True, False, True]) == ([0, 2], [1])


# --- GQA and closed sets ------------------------------------------------------------------------


def test_gqa_exact_match() -> None:
    assert exact_match("Yes.", "yes") == 1.0
    assert exact_match(" Left ", "left") == 1.0
    assert exact_match("the table", "table") == 0.0  # GQA keeps articles
    assert exact_match("tables", "table") == 0.0


def test_choice_accuracy() -> None:
    assert choice_accuracy(["True", "3", "no"], ["true", "4", "no"]) == pytest.approx(2 / 3)


# --- boxes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("[0.1, 0.2, 0.5, 0.6]", (0.1, 0.2, 0.5, 0.6)),
        ("The region is [ 0.10,0.2 ,0.5,  0.6 ] and [0, 0, 1, 1].", (0.1, 0.2, 0.5, 0.6)),
        ("[0, 0, 1, 1]", (0.0, 0.0, 1.0, 1.0)),
        ("[.25, .25, .75, .75", (0.25, 0.25, 0.75, 0.75)),  # cut off before "]"
        ("0.1, 0.2, 0.5, 0.6", None),  # no bracket
        ("[0.1, 0.2, 0.5]", None),  # three numbers
        ("[10, 20, 50, 60]", None),  # pixels, not normalised
        ("[0.5, 0.2, 0.1, 0.6]", None),  # x1 > x2
        ("a dog on the left", None),
        ("", None),
    ],
)
def test_parse_box(text: str, box: tuple[float, float, float, float] | None) -> None:
    assert parse_box(text) == box


def test_box_iou() -> None:
    assert box_iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)) == pytest.approx(0.0625 / 0.4375)
    assert box_iou((0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2)) == pytest.approx(1.0)
    assert box_iou((0, 0, 0.1, 0.1), (0.5, 0.5, 1, 1)) == 0.0


def test_refer_accuracy_thresholds() -> None:
    target = (0.0, 0.0, 0.5, 1.0)
    predictions = ["[0, 0, 0.5, 0.5]", "[0, 0, 0.5, 0.3]", "somewhere left"]  # IoU 0.5, 0.3, none
    assert refer_accuracy(predictions, [target] * 3, 0.5) == pytest.approx(1 / 3)  # IoU >= 0.5 counts
    assert refer_accuracy(predictions, [target] * 3, 0.25) == pytest.approx(2 / 3)


# --- POPE -----------------------------------------------------------------------------------


def test_pope_yes_no_reads_first_sentence() -> None:
    assert pope_yes_no("No.") == "no"
    assert pope_yes_no("There is not a dog.") == "no"
    assert pope_yes_no("Yes, there is a dog. No doubt.") == "yes"  # only the first sentence
    assert pope_yes_no("no, it isn't") == "no"  # comma removed before splitting
    assert pope_yes_no("Nope") == "yes"  # the official rule, quirks included


def test_pope_metrics() -> None:
    predictions = ["Yes", "No, there is not.", "yes", "There is no dog.", "Yes. No more."]
    labels = ["yes", "no", "no", "yes", "yes"]
    # read as yes, no, yes, no, yes -> TP=2, FP=1, TN=1, FN=1
    metrics = pope_metrics(predictions, labels)
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["yes_ratio"] == pytest.approx(0.6)


def test_pope_metrics_all_no_has_zero_precision_not_an_error() -> None:
    metrics = pope_metrics(["no", "no"], ["yes", "no"])
    assert metrics == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 0.0}
