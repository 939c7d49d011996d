"""The paper's metric rules on inputs where another implementation gives another number.

Every expected value is worked out by hand from the reference code that computed the paper's
figures: vlm-evaluation's `util/evaluation/vqav2/eval.py` (VQAv2), `textvqa/m4c_evaluators.py`
(TextVQA), `vizwiz/eval.py` (VizWiz), `tasks/harnesses/gqa.py` + `gqa/eval.py` (GQA),
`tasks/harnesses/refcoco.py` / `ocidref.py` (boxes), AoiDragon/POPE `evaluate.py` (POPE), and the
scikit-learn functions its closed-set scorers call (AUROC, AP, F1). The comment beside each case
gives the derivation.
"""

from __future__ import annotations

import pytest

from vlm_sweeps.eval.scoring import (
    average_precision,
    binary_f1,
    box_iou,
    choice_accuracy,
    gqa_match,
    macro_average_precision,
    mean_vqa_accuracy,
    normalize_textvqa_answer,
    normalize_vizwiz_answer,
    normalize_vqa_answer,
    ovo_roc_auc,
    parse_box,
    parse_box_literal,
    pope_metrics,
    pope_yes_no,
    ranking_metrics,
    refer_accuracy,
    roc_auc,
    round_box,
    split_answerable,
    textvqa_accuracy,
    vizwiz_accuracy,
    vizwiz_question_accuracy,
    vqa_soft_accuracy,
    vqav2_accuracy,
)


def _answers(agree: int, answer: str = "2", other: str = "3", n: int = 10) -> list[str]:
    return [answer] * agree + [other] * (n - agree)


# --- VQAv2: vqav2/eval.py ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two dogs.", "2 dogs"),  # number word -> digit, period before no digit dropped, lowercased
        ("  The  RED\tcar\n", "red car"),  # tab/newline -> space, stripped, article dropped, words rejoined
        ("1,000", "1000"),  # a digit-comma-digit: every mark is removed (not spaced)
        ("red,white", "red white"),  # comma between letters becomes a space
        ("red, white", "red white"),  # comma before a space is removed
        ("2.5", "2.5"),  # a period followed by a digit stays
        ("3.5.", "3.5"),  # ... the final one goes
        ("e.g.", "eg"),  # periods inside a word go too
        ("U.S.A", "usa"),
        ("yes!", "yes"),  # "!" is in the list: becomes a space, then split away
        ("(left)", "left"),  # brackets not next to a space become spaces
        ("what's up?", "what's up"),  # the apostrophe is not in the list; "?" becomes a space
        ("t-shirt", "t shirt"),  # the hyphen is in the list
        ("10:30", "10:30"),  # the colon is not
        ("don't", "don't"),  # apostrophes are kept
        ("dont know", "don't know"),  # contraction without apostrophe restored, straight apostrophe
        ("isnt", "isn't"),
        ("Im", "im"),  # the table's capitalised keys never match: words are lowercased first
        ("none", "0"),
        ("an apple", "apple"),
        ("a." * 40, "a" * 32 + "a." * 8),  # `sub("", text, re.UNICODE)`: count=32, at most 32 periods go
    ],
)
def test_normalize_vqa_answer(raw: str, normalised: str) -> None:
    assert normalize_vqa_answer(raw) == normalised


@pytest.mark.parametrize(("agree", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqav2_leave_one_annotator_out(agree: int, expected: float) -> None:
    # 2 of 10 agree: the two who agree see 1 match (1/3), the eight others see 2 (2/3);
    # (2 * 1/3 + 8 * 2/3) / 10 = 0.6, not the naive min(1, 2/3)
    assert vqav2_accuracy("2", _answers(agree)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("don't know", ["don't know"] * 10, 1.0),  # the 2015 tables turned the prediction into "don t know"
        ("10:30", ["10:30"] * 10, 1.0),  # ... and this one into "10 30"
        ("dont know", ["don't know"] * 10, 1.0),  # contraction restored to the annotators' spelling
        ("t shirt", ["t-shirt"] * 10, 1.0),  # the answers' hyphen goes through the punctuation step too
        ("yes.", ["yes."] * 10, 1.0),  # answers always go through it (even when all agree)
        ("Yes!", ["yes"] * 10, 1.0),
        ("A dog", ["dog"] * 10, 1.0),
        ("\tred car \n", ["red car"] * 10, 1.0),
        ("yes", ["Yes"] * 10, 0.0),  # answers are never lowercased...
        ("two", ["Two"] * 3 + ["3"] * 7, 0.0),  # ...nor number-mapped: "2" != "Two"
        ("yes, it is", ["yes"] * 10, 0.0),  # no partial credit
        ("cat", ["cat"], 0.0),  # one answer: no other annotator to agree with
        ("cat", ["cat", "cat", "dog"], (1 / 3 + 1 / 3 + 2 / 3) / 3),  # leave-one-out at any count
    ],
)
def test_vqav2_accuracy_edge_cases(prediction: str, answers: list[str], expected: float) -> None:
    assert vqav2_accuracy(prediction, answers) == pytest.approx(expected)


def test_vqav2_needs_answers_and_one_prediction_per_example() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vqav2_accuracy("cat", [])
    assert mean_vqa_accuracy(["2", "3"], [_answers(2), _answers(10)]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="one prediction per example"):
        mean_vqa_accuracy(["2"], [_answers(2), _answers(2)])


def test_synthetic_vqa_score_keeps_single_answers_meaningful() -> None:
    # not a paper metric: the synthetic suite's one-answer questions are an exact match instead of 0
    assert vqa_soft_accuracy("Cat.", ["cat"]) == 1.0 and vqa_soft_accuracy("dog", ["cat"]) == 0.0
    assert vqa_soft_accuracy("2", _answers(3)) == pytest.approx(0.9)


# --- TextVQA: m4c_evaluators.py -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Dakota's", "dakota 's"),  # lowercased, "'s" split off by word_tokenize
        ("Coca-Cola's", "coca cola 's"),  # then the hyphen becomes a space
        ("STOP?", "stop"),  # "?" dropped by word_tokenize
        ("1,000", "1000"),  # commas dropped by word_tokenize
        ("Two", "2"),
        ("dont", "don't"),
        ("The End.", "end"),
        ("10:30", "10:30"),
    ],
)
def test_normalize_textvqa_answer(raw: str, normalised: str) -> None:
    assert normalize_textvqa_answer(raw) == normalised


def test_textvqa_normalises_answers_like_predictions() -> None:
    assert textvqa_accuracy("2", ["Two"] * 10) == 1.0  # VQAv2's rules give 0 here
    assert vqav2_accuracy("2", ["Two"] * 10) == 0.0
    answers = ["Coca-Cola's"] * 2 + ["coca cola"] * 8  # -> 2 x "coca cola 's", 8 x "coca cola"
    assert textvqa_accuracy("coca cola", answers) == 1.0
    assert textvqa_accuracy("Coca-Cola's", answers) == pytest.approx(0.6)  # 2 of 10 agree
    assert textvqa_accuracy("dakota", ["dakota"] * 3 + ["kodak"] * 7) == pytest.approx(0.9)
    assert textvqa_accuracy("pepsi", answers) == 0.0


# --- VizWiz: vizwiz/eval.py ---------------------------------------------------------------------


def test_vizwiz_normalisation_uses_its_own_contraction_table() -> None:
    assert normalize_vizwiz_answer("dont") == "don`t"  # backtick in VizWiz's table
    assert normalize_vizwiz_answer("cant") == "can't"  # ... but not in these entries
    assert normalize_vizwiz_answer("weve") == "we've"
    assert normalize_vizwiz_answer("couldn'tve") == "couldn`t`ve"
    assert normalize_vizwiz_answer("Unanswerable.") == "unanswerable"


def test_vizwiz_compares_the_answers_as_written() -> None:
    assert vizwiz_question_accuracy("Unanswerable.", ["unanswerable"] * 10) == 1.0
    assert vizwiz_question_accuracy("unanswerable", ["Unanswerable"] * 10) == 0.0  # raw answer, capitalised
    assert vizwiz_question_accuracy("dont know", ["dont know"] * 10) == 0.0  # prediction became "don`t know"
    assert vizwiz_question_accuracy("t-shirt", ["t shirt"] * 3 + ["shirt"] * 7) == pytest.approx(0.9)


def test_vizwiz_accuracy_and_unanswerability() -> None:
    predictions = ["red", "Unanswerable", "unanswerable", "red"]
    answers = [["red"] * 10, ["unanswerable"] * 10, ["blue"] * 10, ["unanswerable"] * 10]
    answerable = [True, False, True, False]
    metrics = vizwiz_accuracy(predictions, answers, answerable)
    assert metrics["accuracy"] == pytest.approx(0.5)  # 1, 1, 0, 0
    assert metrics["answerable_accuracy"] == pytest.approx(0.5)
    assert metrics["unanswerable_accuracy"] == pytest.approx(0.5)
    # positive class "unanswerable": TP = 1 (2nd), FP = 1 (3rd), FN = 1 (4th) -> F1 = 2 / (2 + 1 + 1)
    assert metrics["unanswerable_f1"] == pytest.approx(0.5)
    # AP of the hard predictions: score 1 holds 1 TP + 1 FP (P 1/2, recall 1/2), score 0 the rest
    # (P 2/4, recall 1): 1/2 * 1/2 + 1/2 * 1/2
    assert metrics["unanswerable_ap"] == pytest.approx(0.5)
    assert split_answerable([True, False, True]) == ([0, 2], [1])
    assert "unanswerable_ap" not in vizwiz_accuracy(["red"], [["red"] * 10], [True])  # no positive: undefined


# --- GQA: gqa.py convert_results + gqa/eval.py --------------------------------------------------


def test_gqa_match() -> None:
    assert gqa_match("Left.", "left") == 1.0  # punctuation removed, lowercased
    assert gqa_match("The Table", "the table") == 1.0
    assert gqa_match("the table", "table") == 0.0  # GQA keeps articles
    assert gqa_match(" left", "left") == 0.0  # no stripping
    assert gqa_match("t-shirt", "t-shirt") == 0.0  # "tshirt" never equals an answer with a hyphen
    assert gqa_match("tables", "table") == 0.0


def test_choice_accuracy() -> None:
    assert choice_accuracy(["True", "3", "no"], ["true", "4", "no"]) == pytest.approx(2 / 3)


# --- boxes: refcoco.py / ocidref.py parse_bbox, compute_iou ------------------------------------------


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("[0.1, 0.2, 0.5, 0.6]", (0.1, 0.2, 0.5, 0.6)),
        ("[0, 0, 1, 1]", (0.0, 0.0, 1.0, 1.0)),  # integers are numbers too
        (" [0.1,0.2,0.5,0.6]\n", (0.1, 0.2, 0.5, 0.6)),  # literal_eval ignores outer whitespace
        ("[1e-1, 2e-1, 5e-1, 6e-1]", (0.1, 0.2, 0.5, 0.6)),
        ("The box is [0.1, 0.2, 0.5, 0.6].", None),  # prose around the box: not a literal
        ("[0.1, 0.2, 0.5, 0.6].", None),  # even a trailing period
        ("[0.1, 0.2, 0.5, 0.6] [0, 0, 1, 1]", None),
        ("(0.1, 0.2, 0.5, 0.6)", None),  # a tuple, not a list
        ("[.25, .25, .75, .75", None),  # cut off before "]"
        ("0.1, 0.2, 0.5, 0.6", None),
        ("[0.1, 0.2, 0.5]", None),  # three numbers
        ("[10, 20, 50, 60]", None),  # pixels, not normalised
        ("[0.5, 0.2, 0.1, 0.6]", None),  # x1 > x2
        ("[0.1, 0.1, 0.1, 0.5]", None),  # x1 == x2
        ("[0, 'a', 1, 1]", None),  # a string among the numbers
        ("", None),
    ],
)
def test_parse_box_literal(text: str, box: tuple[float, float, float, float] | None) -> None:
    assert parse_box_literal(text) == box


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("The box is [0.1, 0.2, 0.5, 0.6].", (0.1, 0.2, 0.5, 0.6)),
        ("The region is [ 0.10,0.2 ,0.5,  0.6 ] and [0, 0, 1, 1].", (0.1, 0.2, 0.5, 0.6)),
        ("[.25, .25, .75, .75", (0.25, 0.25, 0.75, 0.75)),
        ("[10, 20, 50, 60]", None),
        ("a dog on the left", None),
    ],
)
def test_lenient_parse_box_is_another_rule(text: str, box: tuple[float, float, float, float] | None) -> None:
    assert parse_box(text) == box


def test_round_box_is_pythons_round_to_two_decimals() -> None:
    # 0.125 and 0.625 are exact binary halves: round half to even -> 0.12, 0.62; 0.075 is just below
    # its half in binary -> 0.07; 0.335 just above -> 0.34
    assert round_box((0.125, 0.075, 0.625, 0.335)) == (0.12, 0.07, 0.62, 0.34)


def test_box_iou() -> None:
    assert box_iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)) == pytest.approx(0.0625 / 0.4375)
    assert box_iou((0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2)) == pytest.approx(1.0)
    assert box_iou((0, 0, 0.1, 0.1), (0.5, 0.5, 1, 1)) == 0.0


def test_refer_accuracy_thresholds_and_parsers() -> None:
    target = (0.0, 0.0, 0.5, 1.0)
    predictions = ["[0, 0, 0.5, 0.5]", "[0, 0, 0.5, 0.3]", "somewhere left", "Box: [0, 0, 0.5, 1]"]  # IoU .5, .3
    assert refer_accuracy(predictions, [target] * 4, 0.5) == pytest.approx(1 / 4)  # IoU >= 0.5 counts
    assert refer_accuracy(predictions, [target] * 4, 0.25) == pytest.approx(2 / 4)
    assert refer_accuracy(predictions, [target] * 4, 0.5, lenient=True) == pytest.approx(2 / 4)


# --- POPE: evaluate.py --------------------------------------------------------------------------


def test_pope_yes_no_reads_first_sentence() -> None:
    assert pope_yes_no("No.") == "no"
    assert pope_yes_no("There is not a dog.") == "no"
    assert pope_yes_no("Yes, there is a dog. No doubt.") == "yes"  # only the first sentence
    assert pope_yes_no("no, it isn't") == "no"  # comma removed before splitting
    assert pope_yes_no("Nope") == "yes"  # the reference rule, quirks included
    assert pope_yes_no("Yes") == "yes" and pope_yes_no("No") == "no"  # the closed-set candidates


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


# --- ranking metrics: scikit-learn's roc_auc_score, average_precision_score, f1_score -------------

TRUTH, SCORES = [True, False, True, False], [0.9, 0.8, 0.7, 0.1]
LABELS = [0, 1, 2, 0]
PROBS = [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.3, 0.4], [0.25, 0.55, 0.2]]


def test_roc_auc() -> None:
    # positive-negative pairs ordered right: (.9>.8), (.9>.1), (.7>.1), not (.7>.8) -> 3/4
    assert roc_auc(TRUTH, SCORES) == pytest.approx(0.75)
    assert roc_auc([True, False], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([True, True], [0.1, 0.2]) is None  # one class: undefined


def test_average_precision() -> None:
    # thresholds .9 (P 1, recall +1/2), .8 (no recall gained), .7 (P 2/3, recall +1/2): 1/2 + 1/3
    assert average_precision(TRUTH, SCORES) == pytest.approx(0.5 + 1 / 3)
    # tied scores are one threshold: .5 holds 1 TP + 1 FP (P 1/2, +1/2), .2 the other TP (P 2/3, +1/2)
    assert average_precision([True, False, True], [0.5, 0.5, 0.2]) == pytest.approx(0.25 + 1 / 3)
    assert average_precision([False, False], [0.5, 0.2]) is None


def test_multiclass_ovo_auroc_and_macro_ap() -> None:
    # pair (0, 1): column 0 ranks both 0s above the 1 (1.0), column 1 puts the 1 (.5) between the
    # 0s (.3, .55) (0.5) -> 0.75; pair (0, 2): column 0 .6 > .3 but .25 < .3 (0.5), column 2 .4 above
    # .1 and .2 (1.0) -> 0.75; pair (1, 2): 1.0 -> mean 2.5 / 3
    assert ovo_roc_auc(LABELS, PROBS) == pytest.approx(2.5 / 3)
    # class 0: .6 (TP), .3 (FP), .25 (TP) -> 1/2 + 2/3 * 1/2; class 1: .55 (FP), .5 (TP) -> 1/2;
    # class 2: .4 (TP) first -> 1; mean
    assert macro_average_precision(LABELS, PROBS) == pytest.approx((5 / 6 + 0.5 + 1.0) / 3)
    assert ovo_roc_auc([1, 1], [[0.5, 0.5], [0.2, 0.8]]) is None


def test_ranking_metrics_pick_binary_or_multiclass() -> None:
    binary = [[s, 1 - s] for s in SCORES]  # label 0 ("Yes", "True") is the positive class
    labels = [0 if t else 1 for t in TRUTH]
    assert ranking_metrics(labels, binary) == pytest.approx({"auroc": 0.75, "aupr": 0.5 + 1 / 3})
    assert ranking_metrics(LABELS, PROBS) == pytest.approx({"auroc": 2.5 / 3, "aupr": (5 / 6 + 0.5 + 1.0) / 3})
    assert ranking_metrics([0, 0], [[0.9, 0.1], [0.4, 0.6]]) == {"aupr": 1.0}  # AUROC undefined: left out


def test_binary_f1() -> None:
    assert binary_f1([True, True, False, False], [True, False, True, False]) == pytest.approx(0.5)  # 2 / (2 + 2)
    assert binary_f1([False, False], [False, False]) == 0.0  # scikit-learn's zero_division


def test_ranking_metrics_agree_with_scikit_learn() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    import numpy as np

    probs = np.asarray(PROBS)
    assert roc_auc(TRUTH, SCORES) == pytest.approx(sklearn.roc_auc_score(TRUTH, SCORES))
    assert average_precision(TRUTH, SCORES) == pytest.approx(sklearn.average_precision_score(TRUTH, SCORES))
    assert ovo_roc_auc(LABELS, PROBS) == pytest.approx(sklearn.roc_auc_score(LABELS, probs, multi_class="ovo"))
    assert macro_average_precision(LABELS, PROBS) == pytest.approx(sklearn.average_precision_score(LABELS, probs))
    truth, said = [True, True, False, False], [True, False, True, False]
    assert binary_f1(truth, said) == pytest.approx(sklearn.f1_score(truth, said))
