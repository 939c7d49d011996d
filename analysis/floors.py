"""The floor of each benchmark: the score that means "nothing learned from the image".

Radar spokes start at it (figures.radar), so that a polygon's distance from the centre is what
the option gained over it, not over the worst option shown. In order of preference:

- "blind": the blind control, `blind/<benchmark>/<metric>` (every image replaced by a blank one:
  the language prior alone), the mean over the runs that carry it. A finished sweep gets it with
  the same command plus `eval.blind=true`, which evaluates the checkpoints without training.
- "chance": a uniform guess over each question's candidates, for closed-set benchmarks: the
  `<benchmark>/chance` metric the synthetic suite logs, else CHANCE for the paper's closed sets.
- "zero": open-ended answers (VQA, boxes) have no chance level worth the name.
Scores are in percent, as everywhere in analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.results import Results

BLIND_COLUMN = "blind:"  # runs columns "blind:<benchmark>", "chance:<benchmark>" (store.py)
CHANCE_COLUMN = "chance:"
# the paper's closed-set benchmarks: 2 answers (POPE yes/no, VSR true/false), AI2D 4 choices,
# TallyQA the counts 0..15
CHANCE = {"pope": 50.0, "pope_adversarial": 50.0, "pope_popular": 50.0, "pope_random": 50.0,
          "vsr": 50.0, "ai2d": 25.0, "tallyqa": 100 / 16}


@dataclass(frozen=True)
class Floor:
    value: float  # percent
    kind: str  # "blind", "chance" or "zero"

    def label(self) -> str:
        return f"{self.value:.1f} {self.kind}" if self.kind != "zero" else "0"


def _mean(runs: pd.DataFrame, column: str) -> float | None:
    if column not in runs:
        return None
    values = pd.to_numeric(runs[column], errors="coerce").dropna()
    return float(values.mean()) if len(values) else None


def floor_of(results: Results, benchmark: str) -> Floor:
    """The floor of one benchmark over the runs of `results`."""
    runs = results.runs
    blind = _mean(runs, BLIND_COLUMN + benchmark)
    if blind is not None:
        return Floor(blind, "blind")
    chance = _mean(runs, CHANCE_COLUMN + benchmark)
    if chance is not None:
        return Floor(chance, "chance")
    key = benchmark.lower().replace("-", "_").replace(" ", "_")
    if key in CHANCE:
        return Floor(CHANCE[key], "chance")
    return Floor(0.0, "zero")


def floors(results: Results) -> dict[str, Floor]:
    return {b: floor_of(results, b) for b in results.benchmarks}
