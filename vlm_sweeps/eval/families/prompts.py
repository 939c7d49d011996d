"""The user-turn wording of each benchmark family, as Prismatic's evaluation writes it.

The harness adds the image and the chat template; these strings are the question text of every
`EvalExample`. Wording matters: the paper's numbers are measured with exactly these prompts.
"""

from __future__ import annotations

from typing import Sequence

SHORT_ANSWER = "Answer the question using a single word or phrase."
UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
MC_TRIGGER = "Answer with the option's letter from the given choices directly."
# Generation budget of every free-form paper benchmark: vlm-evaluation's `PrismaticVLM(max_length=128)`
# (`max_new_tokens=128`, greedy); a shorter one would cut answers the paper's code scored whole.
MAX_NEW_TOKENS = 128


def vqa(question: str) -> str:
    """VQAv2, GQA, TextVQA, POPE: the question, then the short-answer instruction."""
    return f"{question}\n{SHORT_ANSWER}"


def vizwiz(question: str) -> str:
    """VizWiz adds the LLaVA-1.5 trigger that makes "unanswerable" a valid answer."""
    return f"{question}\n{UNANSWERABLE}\n{SHORT_ANSWER}"


def textvqa_with_ocr(question: str, ocr_tokens: Sequence[str]) -> str:
    """TextVQA with OCR tokens in the prompt, in the form of LLaVA-1.5's `llava_textvqa_val_v051_ocr`
    questions: "<question>\nReference OCR token: <tokens joined by ', '>", the line left out when the
    image has no token."""
    return vqa(f"{question}\nReference OCR token: {', '.join(ocr_tokens)}" if ocr_tokens else question)


def refer(expression: str) -> str:
    """RefCOCO*, OCID-Ref: ask for the box of the described region."""
    return f'Please provide the bounding box coordinate of the region this sentence describes: "{expression}"'


def true_false(caption: str) -> str:
    """VSR: judge a spatial statement about the image."""
    return (
        f'Based on the image, is this statement "True" or "False"? {caption}\n'
        'Respond with "True" or "False" directly.'
    )


def letters(n: int) -> tuple[str, ...]:
    """The option letters "A", "B", ... of an n-way multiple choice."""
    if not 0 < n <= 26:
        raise ValueError(f"a multiple choice needs 1..26 options, got {n}")
    return tuple(chr(ord("A") + i) for i in range(n))


def multiple_choice(question: str, options: Sequence[str]) -> str:
    """TallyQA, AI2D: lettered options; the model's probabilities over the letters decide."""
    lines = "\n".join(f"{letter}. {option}" for letter, option in zip(letters(len(options)), options))
    return f"{question}\n{lines}\n{MC_TRIGGER}"
