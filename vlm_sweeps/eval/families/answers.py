"""Answer normalisation and matching of the open-ended benchmarks, as the paper's code does it.

The paper's numbers come from TRI-ML/vlm-evaluation, which carries its own copies of the official
scorers. Each function below names the reference file and function whose behaviour it reproduces,
quirks included (they are what the published figures were computed with):

- VQAv2: `vlm_eval/util/evaluation/vqav2/eval.py` (`process_punctuation`,
  `process_digits_articles_contractions`, `VQAEvaluator.evaluate`): the current GT-Vision-Lab
  `vqaEval.py` tables (not the 2015 beta ones), but vlm-evaluation always normalises the prediction
  and runs only the punctuation step, always, on the annotators' answers.
- TextVQA: `vlm_eval/util/evaluation/textvqa/m4c_evaluators.py` (`EvalAIAnswerProcessor`,
  `TextVQAAccuracyEvaluator`), the same as facebookresearch/mmf `mmf/utils/m4c_evaluators.py`:
  prediction and answers normalised alike, with EvalAI's word tokenisation first.
- VizWiz: `vlm_eval/util/evaluation/vizwiz/eval.py` (`VQAEval.evaluate`, `processPunctuation`,
  `processDigitArticle`): the prediction is normalised, the answers are compared raw, and the
  contraction table writes most apostrophes as backticks.
- GQA: `vlm_eval/tasks/harnesses/gqa.py` (`GQAScorer.convert_results`) then
  `vlm_eval/util/evaluation/gqa/eval.py`: ASCII punctuation removed from the prediction, lowercased,
  compared with the raw answer.

Pure python: no torch, no numpy.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

# fmt: off
# The contraction table of vqaEval.py (GT-Vision-Lab/VQA, current master) as vlm-evaluation's
# vqav2/eval.py and m4c_evaluators.py carry it: straight apostrophes. Capitalised keys ("Im", "Ive")
# can never match (words are lowercased first); they are in the reference and kept.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
# fmt: on
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES: tuple[str, ...] = ("a", "an", "the")
# vqaEval.py's list (also VizWiz's and m4c's): no apostrophe, no colon, no period (periods have
# their own rule); hyphens and "!" are in it.
PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip

# VizWiz's `VQAEval.contractions` is the same table with apostrophes written as backticks, except in
# the entries below (kept with apostrophes: the first five and "weve", "wheres", "whove"; the two
# keys "couldn'tve" / "hadn'tve" keep theirs but map to backtick values). So "dont" becomes "don`t".
_VIZWIZ_STRAIGHT = frozenset({"aint", "arent", "cant", "couldve", "couldnt", "weve", "wheres", "whove"})
_VIZWIZ_STRAIGHT_KEY = frozenset({"couldn'tve", "hadn'tve"})
VIZWIZ_CONTRACTIONS: dict[str, str] = {
    (k if k in _VIZWIZ_STRAIGHT or k in _VIZWIZ_STRAIGHT_KEY else k.replace("'", "`")):
    (v if k in _VIZWIZ_STRAIGHT else v.replace("'", "`"))
    for k, v in CONTRACTIONS.items()
}

# "(?!<=\d)" is the reference's typo for a lookbehind: a lookahead that always passes, so a period
# is dropped unless a digit follows it ("2.5" keeps it, "dog." loses it).
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
# The reference calls `sub("", text, re.UNICODE)`: the flag lands in `count`, so at most 32 periods go.
_PERIOD_COUNT = int(re.UNICODE)
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")  # vqaEval.py, VizWiz
_M4C_COMMA_STRIP = re.compile(r"(?<=\d)(,)+(?=\d)")  # m4c_evaluators.py


def _punctuation(text: str, comma_strip: re.Pattern[str] = _COMMA_STRIP) -> str:
    """`process_punctuation`: a mark next to a space (or any mark, once the text has a digit-comma-digit
    such as "1,000") is removed, any other becomes a space; then periods not before a digit go. The
    test for each mark looks at the original text, not the running result, as the reference does."""
    out = text
    has_number_comma = comma_strip.search(text) is not None
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=_PERIOD_COUNT)


def _digits_articles(text: str, contractions: dict[str, str]) -> str:
    """`process_digits_articles_contractions` / `processDigitArticle`: lowercase, number words to
    digits, articles dropped, contraction table applied word by word, single spaces."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(contractions.get(w, w) for w in words if w not in ARTICLES)


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def _leave_one_out(prediction: str, answers: Sequence[str]) -> float:
    """Mean over annotators of min(1, matches among the *other* annotators / 3), by position (the
    references compare answer records or (index, answer) pairs, which differ by position)."""
    matches = [a == prediction for a in answers]
    total = sum(matches)
    return sum(min(1.0, (total - m) / 3) for m in matches) / len(answers)


# --- VQAv2 ------------------------------------------------------------------------------------------


def normalize_vqa_answer(text: str) -> str:
    """vqav2/eval.py `VQAEvaluator.evaluate` on the prediction: whitespace, punctuation, then number
    words, articles and contractions ("Two dogs." -> "2 dogs", "dont know" -> "don't know")."""
    return _digits_articles(_punctuation(_clean(text)), CONTRACTIONS)


def vqav2_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction against the annotators' answers, in 0..1, as vlm-evaluation's
    `VQAEvaluator.evaluate` computes it: the prediction fully normalised, each answer through the
    punctuation step only (never lowercased or number-mapped), leave-one-annotator-out. Ten
    annotators: 4+ agreeing give 1.0, 3 give 0.9, 2 give 0.6, 1 gives 0.3. A single answer leaves no
    other annotator to agree with, so it always scores 0.0 (as in the reference)."""
    if not answers:
        raise ValueError("a VQA question needs at least one ground-truth answer; got none")
    return _leave_one_out(normalize_vqa_answer(prediction), [_punctuation(a) for a in answers])


# --- TextVQA ----------------------------------------------------------------------------------------


def normalize_textvqa_answer(text: str) -> str:
    """m4c_evaluators.py `EvalAIAnswerProcessor.__call__`: lowercase, drop "," and "?", split "'s"
    off ("dakota's" -> "dakota 's"), then the VQA punctuation and number/article/contraction steps."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return _digits_articles(_punctuation(_clean(text), _M4C_COMMA_STRIP), CONTRACTIONS)


def textvqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """m4c_evaluators.py `TextVQAAccuracyEvaluator`: prediction and every answer normalised alike,
    then the leave-one-out soft score of the prediction (0.0 when no answer matches it). The
    reference asserts ten answers (TextVQA always has ten); any other count is scored the same way."""
    if not answers:
        raise ValueError("a TextVQA question needs its ground-truth answers; got none")
    return _leave_one_out(normalize_textvqa_answer(prediction), [normalize_textvqa_answer(a) for a in answers])


# --- VizWiz -----------------------------------------------------------------------------------------


def normalize_vizwiz_answer(text: str) -> str:
    """vizwiz/eval.py `VQAEval.evaluate` on the prediction: as VQAv2, but with VizWiz's contraction
    table ("dont" -> "don`t")."""
    return _digits_articles(_punctuation(_clean(text)), VIZWIZ_CONTRACTIONS)


def vizwiz_question_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """vizwiz/eval.py `VQAEval.evaluate`: the normalised prediction against the annotators' answers
    *as written* (no normalisation at all), leave-one-annotator-out."""
    if not answers:
        raise ValueError("a VizWiz question needs its ground-truth answers; got none")
    return _leave_one_out(normalize_vizwiz_answer(prediction), list(answers))


def vizwiz_predicts_unanswerable(prediction: str) -> bool:
    """vizwiz/eval.py `get_answerable_preds`: the normalised prediction is exactly "unanswerable"."""
    return normalize_vizwiz_answer(prediction) == "unanswerable"


# --- GQA ------------------------------------------------------------------------------------------

_STRIP_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_gqa_prediction(text: str) -> str:
    """gqa.py `GQAScorer.convert_results`: ASCII punctuation removed, lowercased; nothing else (no
    whitespace stripping: the harness already strips decoded text)."""
    return text.translate(_STRIP_PUNCTUATION).lower()


def gqa_match(prediction: str, answer: str) -> float:
    """gqa/eval.py: 1.0 if the cleaned prediction equals the answer *as written*, else 0.0 (an answer
    with punctuation, such as "t-shirt", can never be matched; the reference has the same blind spot)."""
    return float(normalize_gqa_prediction(prediction) == answer)
