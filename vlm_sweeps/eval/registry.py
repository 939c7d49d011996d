"""Benchmarks by name: how to load a benchmark's examples and how to score predictions on them.

A benchmark module registers itself with `register(Benchmark(...))` at import time; the harness
looks names up with `get(name)`. Loaders own the prompt wording (the question text of each
`EvalExample` is what the user turn says); scorers own the official metric definitions.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from vlm_sweeps.eval.examples import EvalExample


@dataclass(frozen=True)
class LoadContext:
    """Where a loader finds its files and how many examples it returns.

    `root` is the benchmark data root (real files) or the synthetic world's folder.
    `max_examples` selects a slim subset; None keeps all. The paper's benchmarks take
    vlm-evaluation's slim-N sets (its fixed shuffle, seed 21; N per split where its slim sets are per
    split; see `families/files.select_subset`), so a slim figure compares with a published one:
    `seed` does not change them. The synthetic suite samples with `seed`.
    """

    root: Path
    max_examples: int | None = None
    seed: int = 7


Loader = Callable[[LoadContext], list[EvalExample]]
# predictions[i] answers examples[i]: generated text, or the chosen candidate for closed-set ones
# (an `examples.Choice`, a str that carries the candidates' probabilities, when the harness answered).
Scorer = Callable[[Sequence[EvalExample], Sequence[str]], dict[str, float]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    load: Loader
    score: Scorer
    max_new_tokens: int = 16  # generation budget for free-form answers
    synthetic: bool = False  # reads the synthetic world's folder instead of the data root
    # Recorded with every evaluation (eval/settings.py): bump it when a change to the loader (which
    # examples, their wording) or the scorer changes a score, so that analysis never ranks old and new
    # scores together.
    version: str = "1"


_REGISTRY: dict[str, Benchmark] = {}
# Modules whose import registers benchmarks; imported lazily so that `get` always sees them.
_MODULES = ("vlm_sweeps.eval.synthetic", "vlm_sweeps.eval.paper")


def register(benchmark: Benchmark) -> Benchmark:
    if benchmark.name in _REGISTRY and _REGISTRY[benchmark.name] is not benchmark:
        raise ValueError(f"benchmark {benchmark.name!r} is registered twice")
    _REGISTRY[benchmark.name] = benchmark
    return benchmark


def _load_modules() -> None:
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a family not written yet must not hide the others
            if err.name != module:
                raise


def names() -> list[str]:
    _load_modules()
    return sorted(_REGISTRY)


def get(name: str) -> Benchmark:
    _load_modules()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(sorted(_REGISTRY))}") from None
