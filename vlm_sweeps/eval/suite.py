"""Run a benchmark suite with one model: load every benchmark -> answer (or reuse cached
predictions) -> score.

Closed-set answers are `examples.Choice`s that carry every candidate's probability (the AUROC /
AUPR metrics need them): the prediction cache stores them as `Choice.encode()` lines, and a cached
closed-set answer without probabilities (written before they were kept) is answered again.

All benchmarks are loaded before the model answers anything, so a missing file fails the suite
in seconds rather than after hours of generation; with `continue_on_missing` the benchmarks whose
files are missing are skipped (and reported) and the others still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.cache import CacheKey, PredictionCache
from vlm_sweeps.eval.examples import Choice, EvalExample, probabilities_of
from vlm_sweeps.eval.harness import HARNESS_VERSION, Answerer
from vlm_sweeps.eval.registry import LoadContext

log = logging.getLogger(__name__)
# Tag of a run whose evaluation skipped benchmarks (comma-separated names; absent when none).
TAG_SKIPPED = naming.TAG_SKIPPED_BENCHMARKS


@dataclass
class SuiteResult:
    metrics: dict[str, float] = field(default_factory=dict)  # `<benchmark>/<metric>`
    predictions: dict[str, list[dict]] = field(default_factory=dict)  # per benchmark, one row per example
    skipped: dict[str, str] = field(default_factory=dict)  # benchmark -> why (the missing-file message)
    generated: dict[str, int] = field(default_factory=dict)  # examples the model answered (not cached)


def run_suite(answerer: Answerer, suite: Sequence[str], *, world_dir: Path | None, data_root: Path,
              max_examples: int | None, batch_size: int, seed: int, progress: bool = False,
              cache: PredictionCache | None = None, model_key: str | None = None,
              continue_on_missing: bool = False) -> SuiteResult:
    """Evaluate `suite`; predictions come from `cache` (keyed by `model_key`) where it has them.

    A benchmark whose files are missing raises its loader's error (`MissingBenchmarkFile` names
    the file and the benchmark) unless `continue_on_missing`: then it is listed in `skipped`.
    """
    if cache is not None and not model_key:
        raise ValueError("a prediction cache needs the model's key (eval/cache.py: model_key)")
    result = SuiteResult()
    loaded: dict[str, list[EvalExample]] = {}
    for name in suite:
        bench = registry.get(name)
        root = world_dir if bench.synthetic else data_root
        try:
            if root is None:
                raise FileNotFoundError(f"benchmark {name!r} reads the synthetic world, which this job did not build")
            loaded[name] = bench.load(LoadContext(Path(root), max_examples, seed))
        except FileNotFoundError as err:  # MissingBenchmarkFile is one
            if not continue_on_missing:
                raise
            result.skipped[name] = str(err)
            log.warning("skipping %s: %s", name, err)
    if suite and not loaded:
        raise FileNotFoundError("no benchmark of the suite could be loaded:\n  " +
                                "\n  ".join(result.skipped.values()))
    for name, examples in loaded.items():
        bench = registry.get(name)
        key = CacheKey(model_key, name, answerer.blind, bench.max_new_tokens, answerer.dtype_name,
                       HARNESS_VERSION) if cache is not None else None
        preds = _answer(answerer, examples, bench.max_new_tokens, batch_size, progress, name, cache, key)
        result.generated[name] = preds.generated
        scores = bench.score(examples, preds.texts)
        result.metrics.update({naming.metric_name(name, k): float(v) for k, v in scores.items()})
        result.predictions[name] = [_row(ex, p) for ex, p in zip(examples, preds.texts)]
        log.info("%s (%d examples, %d generated): %s", name, len(examples), preds.generated,
                 ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
    return result


def _row(ex: EvalExample, prediction: str) -> dict:
    """One line of the predictions artifact; closed-set rows add the candidates' probabilities."""
    row = {"qid": ex.qid, "question": ex.question, "prediction": str(prediction), "answers": list(ex.answers)}
    if ex.box:
        row["box"] = list(ex.box)
    probabilities = probabilities_of(prediction)
    if probabilities is not None:
        row["probabilities"] = dict(zip(ex.choices, probabilities))
    return row


@dataclass
class _Predictions:
    texts: list[str]
    generated: int


def _answer(answerer: Answerer, examples: list[EvalExample], max_new_tokens: int, batch_size: int,
            progress: bool, name: str, cache: PredictionCache | None, key: CacheKey | None) -> _Predictions:
    from tqdm.auto import tqdm

    texts = cache.lookup(key, examples) if cache is not None else [None] * len(examples)
    for i, (ex, t) in enumerate(zip(examples, texts)):
        if t is not None and ex.mode == "closed_set":
            texts[i] = Choice.decode(t, ex.choices)  # None (answered again) for a bare cached candidate
    todo = [i for i, t in enumerate(texts) if t is None]
    if todo:
        with tqdm(total=len(todo), desc=f"eval {name}", disable=None if progress else True, leave=False) as bar:
            answers = answerer.answer([examples[i] for i in todo], batch_size, max_new_tokens, progress=bar)
        for i, a in zip(todo, answers):
            texts[i] = a
        if cache is not None:
            cache.store(key, [examples[i] for i in todo],
                        [a.encode() if isinstance(a, Choice) else a for a in answers])
    return _Predictions(texts, len(todo))  # type: ignore[arg-type]


def evaluate_suite(answerer: Answerer, suite: Sequence[str], *, world_dir: Path | None, data_root: Path,
                   max_examples: int | None, batch_size: int, seed: int, progress: bool = False,
                   cache: PredictionCache | None = None, model_key: str | None = None,
                   continue_on_missing: bool = False) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """`run_suite` as (metrics `<benchmark>/<metric>`, predictions per benchmark)."""
    result = run_suite(answerer, suite, world_dir=world_dir, data_root=data_root, max_examples=max_examples,
                       batch_size=batch_size, seed=seed, progress=progress, cache=cache, model_key=model_key,
                       continue_on_missing=continue_on_missing)
    return result.metrics, result.predictions
