"""The record every benchmark loader yields and every scorer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

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
