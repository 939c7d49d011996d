"""Official metric definitions, pure python: what a benchmark's number means.

Every scorer here reproduces the reference evaluation script of its benchmark on the same inputs,
so that a figure logged by `vlm_sweeps` can be compared with the paper's tables:

- VQAv2 / VizWiz / TextVQA: the VQA API's `vqaEval.py` (GT-Vision-Lab/VQA), answer normalisation
  and leave-one-annotator-out soft accuracy, quirks included (see `vqa_soft_accuracy`).
- GQA: the Prismatic `vlm-evaluation` GQA scorer (punctuation stripped, lowercased, exact match).
- RefCOCO* / OCID-Ref: Prismatic's box parsing and accuracy at an IoU threshold.
- POPE: the POPE repository's `evaluate.py` (yes/no read from the first sentence).
- Closed-set benchmarks (VSR, TallyQA, AI2D): accuracy of the chosen candidate.

No torch import: scorers run in the analysis environment and in unit tests.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

Box = tuple[float, float, float, float]

# --- VQA answer normalisation: the tables of the official vqaEval.py, verbatim -------------------
# The curly apostrophes (U+2019) and the unreachable capitalised keys ("Im", "Ive": text is
# lowercased first) are in the official file; they are kept so scores match it exactly.
# fmt: off
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn’t’ve", "couldnt’ve": "couldn’t’ve", "didnt": "didn’t", "doesnt": "doesn’t", "dont": "don’t", "hadnt": "hadn’t",
    "hadnt’ve": "hadn’t’ve", "hadn'tve": "hadn’t’ve", "hasnt": "hasn’t", "havent": "haven’t", "hed": "he’d", "hed’ve": "he’d’ve",
    "he’dve": "he’d’ve", "hes": "he’s", "howd": "how’d", "howll": "how’ll", "hows": "how’s", "Id’ve": "I’d’ve", "I’dve": "I’d’ve",
    "Im": "I’m", "Ive": "I’ve", "isnt": "isn’t", "itd": "it’d", "itd’ve": "it’d’ve", "it’dve": "it’d’ve", "itll": "it’ll", "let’s": "let’s",
    "maam": "ma’am", "mightnt": "mightn’t", "mightnt’ve": "mightn’t’ve", "mightn’tve": "mightn’t’ve", "mightve": "might’ve",
    "mustnt": "mustn’t", "mustve": "must’ve", "neednt": "needn’t", "notve": "not’ve", "oclock": "o’clock", "oughtnt": "oughtn’t",
    "ow’s’at": "’ow’s’at", "’ows’at": "’ow’s’at", "’ow’sat": "’ow’s’at", "shant": "shan’t", "shed’ve": "she’d’ve", "she’dve": "she’d’ve",
    "she’s": "she’s", "shouldve": "should’ve", "shouldnt": "shouldn’t", "shouldnt’ve": "shouldn’t’ve", "shouldn’tve": "shouldn’t’ve",
    "somebody’d": "somebodyd", "somebodyd’ve": "somebody’d’ve", "somebody’dve": "somebody’d’ve", "somebodyll": "somebody’ll",
    "somebodys": "somebody’s", "someoned": "someone’d", "someoned’ve": "someone’d’ve", "someone’dve": "someone’d’ve",
    "someonell": "someone’ll", "someones": "someone’s", "somethingd": "something’d", "somethingd’ve": "something’d’ve",
    "something’dve": "something’d’ve", "somethingll": "something’ll", "thats": "that’s", "thered": "there’d", "thered’ve": "there’d’ve",
    "there’dve": "there’d’ve", "therere": "there’re", "theres": "there’s", "theyd": "they’d", "theyd’ve": "they’d’ve",
    "they’dve": "they’d’ve", "theyll": "they’ll", "theyre": "they’re", "theyve": "they’ve", "twas": "’twas", "wasnt": "wasn’t",
    "wed’ve": "we’d’ve", "we’dve": "we’d’ve", "weve": "we've", "werent": "weren’t", "whatll": "what’ll", "whatre": "what’re",
    "whats": "what’s", "whatve": "what’ve", "whens": "when’s", "whered": "where’d", "wheres": "where's", "whereve": "where’ve",
    "whod": "who’d", "whod’ve": "who’d’ve", "who’dve": "who’d’ve", "wholl": "who’ll", "whos": "who’s", "whove": "who've", "whyll": "why’ll",
    "whyre": "why’re", "whys": "why’s", "wont": "won’t", "wouldve": "would’ve", "wouldnt": "wouldn’t", "wouldnt’ve": "wouldn’t’ve",
    "wouldn’tve": "wouldn’t’ve", "yall": "y’all", "yall’ll": "y’all’ll", "y’allll": "y’all’ll", "yall’d’ve": "y’all’d’ve",
    "y’alld’ve": "y’all’d’ve", "y’all’dve": "y’all’d’ve", "youd": "you’d", "youd’ve": "you’d’ve", "you’dve": "you’d’ve",
    "youll": "you’ll", "youre": "you’re", "youve": "you’ve",
}
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES: tuple[str, ...] = ("a", "an", "the")
PUNCTUATION: tuple[str, ...] = (
    ";", ":", "/", "'", "[", "]", '"', "(", ")", "=", "+", "\\", "_", ">", "<", "@", "`", ",", "?",
)
# fmt: on
# The official "(?!<=\d)" is a typo'd lookbehind (it is a lookahead that always passes): a period
# is dropped unless a digit follows it ("2.5" keeps its point, "dog." loses it).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
# The official call is `periodStrip.sub("", text, re.UNICODE)`: the flag lands in `count`, so at
# most re.UNICODE == 32 periods are removed. Kept for exactness.
_PERIOD_STRIP_COUNT = int(re.UNICODE)


def _process_punctuation(text: str) -> str:
    """vqaEval.processPunctuation: drop punctuation next to a space (or anywhere once the text has
    a digit-comma-digit such as "1,000"), otherwise turn it into a space; then strip periods."""
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCTUATION:
        # The official test looks at the *original* text for every mark, not the running output.
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def _process_digit_article(text: str) -> str:
    """vqaEval.processDigitArticle: lowercase, number words -> digits, articles dropped,
    contractions restored, whitespace collapsed."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa_answer(s: str) -> str:
    """The official VQA normalisation of a predicted answer ("Two dogs." -> "2 dogs")."""
    return _process_digit_article(_process_punctuation(_clean_whitespace(s)))


def vqa_soft_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction against the human answers, in 0..1.

    Exactly the official `vqaEval.py` (GT-Vision-Lab/VQA): the prediction is normalised with
    `normalize_vqa_answer`; the ground-truth answers get only the punctuation step, and only when
    they are not all identical (the official code does this; VQAv2 annotations are already
    normalised, so it matters only for raw answers). Then each answer is left out in turn,
    min(1, matches among the others / 3), and the results are averaged: out of 10 annotators,
    4 or more agreeing give 1.0, 3 give 0.9, 2 give 0.6, 1 gives 0.3. Leave-one-out is by position (the
    official code compares answer records, which differ by `answer_id`).

    With a single answer, leave-one-out is undefined (it would always give 0), so the score is
    the exact match of both normalised answers: a one-answer synthetic benchmark stays meaningful.
    """
    if not answers:
        raise ValueError("vqa_soft_accuracy needs at least one ground-truth answer; got none")
    pred = normalize_vqa_answer(prediction)
    if len(answers) == 1:
        return float(pred == normalize_vqa_answer(answers[0]))
    gts = list(answers)
    if len(set(gts)) > 1:
        gts = [_process_punctuation(a) for a in gts]
    matches = [gt == pred for gt in gts]
    total = sum(matches)
    per_left_out = [min(1.0, (total - m) / 3) for m in matches]
    return sum(per_left_out) / len(per_left_out)


def mean_vqa_accuracy(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean `vqa_soft_accuracy` over examples (0..1); the VQAv2 / TextVQA headline number."""
    check_lengths(predictions, answers)
    return _mean([vqa_soft_accuracy(p, a) for p, a in zip(predictions, answers)])


# --- VizWiz -----------------------------------------------------------------------------------


def vizwiz_accuracy(
    predictions: Sequence[str], answers: Sequence[Sequence[str]], answerable: Sequence[bool]
) -> dict[str, float]:
    """VizWiz soft accuracy overall and on the answerable / unanswerable questions.

    `answerable` is the dataset's own flag (VizWiz `answerable` field: 0 when the crowd said the
    image cannot answer the question); a split with no question scores 0.0.
    """
    check_lengths(predictions, answers)
    check_lengths(predictions, answerable)
    scores = [vqa_soft_accuracy(p, a) for p, a in zip(predictions, answers)]
    return {
        "accuracy": _mean(scores),
        "answerable_accuracy": _mean([s for s, ok in zip(scores, answerable) if ok]),
        "unanswerable_accuracy": _mean([s for s, ok in zip(scores, answerable) if not ok]),
    }


def split_answerable(answerable: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Indices of the answerable and of the unanswerable questions, in order."""
    yes = [i for i, ok in enumerate(answerable) if ok]
    no = [i for i, ok in enumerate(answerable) if not ok]
    return yes, no


# --- GQA and closed-set accuracy --------------------------------------------------------------

_STRIP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_gqa_answer(s: str) -> str:
    """Prismatic's GQA normalisation: ASCII punctuation removed, lowercased (plus outer whitespace
    stripped, which the official script leaves to the model's decoding)."""
    return s.translate(_STRIP_PUNCTUATION).lower().strip()


def exact_match(prediction: str, answer: str) -> float:
    """1.0 if the GQA-normalised prediction equals the GQA-normalised answer, else 0.0."""
    return float(normalize_gqa_answer(prediction) == normalize_gqa_answer(answer))


def choice_accuracy(predictions: Sequence[str], answers: Sequence[str]) -> float:
    """Fraction of closed-set predictions equal to the answer (case and outer spaces ignored);
    the prediction is the candidate the model scored highest."""
    check_lengths(predictions, answers)
    return _mean([float(p.strip().casefold() == a.strip().casefold()) for p, a in zip(predictions, answers)])


# --- Referring expressions: boxes -------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# "[" then four numbers separated by commas (any spaces); "]" optional so that an answer cut off
# by the token budget right before the closing bracket still counts.
_BOX = re.compile(r"\[\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")\s*,\s*(" + _NUMBER + r")")


def parse_box(text: str) -> Box | None:
    """The first normalised `[x1, y1, x2, y2]` in generated text, or None.

    Accepted: square brackets around four comma-separated numbers, with any spacing, anywhere in
    the text ("The box is [0.1, 0.2,0.5 , 0.6]."); the closing bracket may be missing. Rejected
    (None, which scores as wrong, like Prismatic's scorer): no "[", fewer than four numbers,
    coordinates outside 0..1 (pixel boxes), or x1 >= x2 / y1 >= y2. Only the first bracketed
    group is considered: a model that lists several boxes is judged on its first.
    """
    match = _BOX.search(text)
    if match is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in match.groups())
    if not all(0.0 <= v <= 1.0 for v in (x1, y1, x2, y2)) or x1 >= x2 or y1 >= y2:
        return None
    return (x1, y1, x2, y2)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two `[x1, y1, x2, y2]` boxes (0.0 when the union is empty)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def refer_accuracy(predictions: Sequence[str], boxes: Sequence[Sequence[float]], threshold: float) -> float:
    """Fraction of generated answers whose parsed box has IoU >= `threshold` with the target
    (0.5 for RefCOCO*, 0.25 for OCID-Ref); unparsable answers count as wrong."""
    check_lengths(predictions, boxes)
    hits = []
    for text, target in zip(predictions, boxes):
        box = parse_box(text)
        hits.append(float(box is not None and box_iou(box, target) >= threshold))
    return _mean(hits)


# --- POPE ---------------------------------------------------------------------------------------


def pope_yes_no(text: str) -> str:
    """POPE's reading of an answer: "no" if the first sentence contains the word "No", "no" or
    "not" (commas ignored), otherwise "yes" (as the POPE repository's evaluate.py does)."""
    first_sentence = text.split(".")[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """POPE accuracy, precision, recall, f1 and yes_ratio, "yes" being the positive class.

    Labels are "yes"/"no" (anything but "no" is yes, as in the official script). Where the
    official script would divide by zero (no predicted or no actual yes), the figure is 0.0.
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


# --- helpers --------------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def check_lengths(predictions: Sequence[object], targets: Sequence[object]) -> None:
    """One prediction per example, or a ValueError that says so (zip would silently truncate)."""
    if len(predictions) != len(targets):
        raise ValueError(
            f"got {len(predictions)} predictions for {len(targets)} examples; "
            "the harness must return exactly one prediction per example, in order"
        )
