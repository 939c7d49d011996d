"""A trained model's evaluation: the benchmark suite through the harness, with the prediction
and frozen-feature caches. The job (`evaluate`) and `python -m vlm_sweeps.evaluate` (`run`, on a
model loaded from a run's checkpoint) both go through `run`."""

from __future__ import annotations

from typing import Any

from vlm_sweeps import identity


def answerer_for(cfg: Any, s: Any, blind: bool | None = None):
    """The harness over `s.model` (frozen-feature cache when the encoder never trained)."""
    from vlm_sweeps.eval.harness import Answerer
    from vlm_sweeps.train.runner import frozen_features

    s.model.eval()
    never_trained = all("encoder" not in stage.train for stage in cfg.optimization.stages)
    features = frozen_features(cfg, s) if never_trained else None
    if features is not None:
        s.feature_cache["eval"] = features.cache.stats
    return Answerer(s.model, s.tokenizer, s.fmt, s.transforms, s.device,
                    blind=cfg.eval.blind if blind is None else blind, autocast_dtype=s.autocast, features=features)


def run(cfg: Any, s: Any, answerer: Any, signature: str | None = None):
    """`benchmarks.suite` on `answerer`'s model: the SuiteResult (metrics, predictions, skipped).
    Predictions are cached by (signature, trained weights, benchmark, generation settings), so
    re-scoring costs no generation."""
    from vlm_sweeps.eval.cache import job_cache
    from vlm_sweeps.eval.suite import run_suite

    signature = signature or identity.signature(cfg)
    cache, key = job_cache(cfg, s.model, signature) if cfg.eval.cache else (None, None)
    try:
        return run_suite(answerer, list(cfg.benchmarks.suite), world_dir=s.world, data_root=s.data_root,
                         max_examples=cfg.benchmarks.max_examples, batch_size=cfg.benchmarks.batch_size,
                         seed=cfg.seed, progress=cfg.run.progress, cache=cache, model_key=key,
                         continue_on_missing=cfg.eval.continue_on_missing)
    finally:
        if answerer.features is not None:
            answerer.features.cache.evict()


def evaluate(cfg: Any, s: Any, blind: bool | None = None, skipped: list[str] | None = None
             ) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """The benchmark suite on the current model; `blind` overrides `eval.blind` (the control);
    benchmarks skipped for missing files are appended to `skipped`."""
    result = run(cfg, s, answerer_for(cfg, s, blind))
    if skipped is not None:
        skipped.extend(result.skipped)
    return result.metrics, result.predictions
