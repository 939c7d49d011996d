"""The record every benchmark loader yields and every scorer reads, and the closed-set prediction."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

# How the model answers: free generation (then a scorer parses the text) or a choice among
# candidates by the model's probabilities (closed set, as the Prismatic evaluation does).
Mode = Literal["generate", "closed_set"]


@dataclass(frozen=True)
class EvalExample:
    """One question about one image (or none, for text-only probes).

    `answers` holds every ground-truth answer the official scorer uses (VQAv2 has 10 annotator
    answers; closed-set benchmarks have one, which is also one of `choices`). `box` is the target
    of referring-expression benchmarks, normalised `[x1, y1, x2, y2]` in 0..1 of the original image.
    """

    qid: str
    question: str
    image: str | None  # absolute path of the image file
    answers: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # closed-set candidates, in a fixed order
    box: tuple[float, float, float, float] | None = None
    mode: Mode = "generate"
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class Choice(str):
    """A closed-set prediction: the chosen candidate (the string itself, so it compares, prints and
    serialises as the candidate) carrying every candidate's probability, in the order of the
    example's `choices`, normalised over the candidates.

    That is what vlm-evaluation keeps (`return_string_probabilities`: the candidates' probabilities
    renormalised to sum to 1) and what its AUROC / AUPR figures are computed from.
    """

    probabilities: tuple[float, ...]

    def __new__(cls, choice: str, probabilities: Sequence[float]) -> Choice:  # noqa: PYI034
        obj = super().__new__(cls, choice)
        obj.probabilities = tuple(float(p) for p in probabilities)
        return obj

    def __reduce__(self):  # pickling and copying keep the probabilities
        return (Choice, (str(self), self.probabilities))

    def encode(self) -> str:
        """One line of JSON (how the prediction cache stores a closed-set answer)."""
        return json.dumps({"choice": str(self), "probabilities": list(self.probabilities)}, ensure_ascii=False)

    @staticmethod
    def decode(text: str, choices: Sequence[str]) -> Choice | None:
        """The `Choice` that `encode` wrote for an example with these `choices`; None for anything
        else (a bare candidate cached before probabilities were kept, a hand-edited line)."""
        try:
            blob = json.loads(text)
            choice, probs = blob["choice"], [float(p) for p in blob["probabilities"]]
        except (ValueError, TypeError, KeyError):
            return None
        if choice not in choices or len(probs) != len(choices) or not all(math.isfinite(p) for p in probs):
            return None
        return Choice(choice, probs)


def probabilities_of(prediction: str) -> tuple[float, ...] | None:
    """The candidates' probabilities of a closed-set prediction; None for plain text."""
    return getattr(prediction, "probabilities", None)
