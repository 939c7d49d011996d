"""A trained model's evaluation: the benchmark suite through the harness, with the prediction
and frozen-feature caches. The job and `python -m vlm_sweeps.evaluate` both call `evaluate`."""

from __future__ import annotations

from typing import Any

from vlm_sweeps import identity


def evaluate(cfg: Any, s: Setup, blind: bool | None = None, skipped: list[str] | None = None
             ) -> tuple[dict[str, float], dict[str, list[dict]]]:
    """The benchmark suite on the current model; `blind` overrides `eval.blind` (the control).
    Predictions are cached by (signature, trained weights, benchmark, generation settings), so
    re-scoring costs no generation; benchmarks skipped for missing files are appended to `skipped`."""
    from vlm_sweeps.eval.cache import job_cache
    from vlm_sweeps.eval.harness import Answerer
    from vlm_sweeps.eval.suite import run_suite

    s.model.eval()
    cache, key = job_cache(cfg, s.model, identity.signature(cfg)) if cfg.eval.cache else (None, None)
    never_trained = all("encoder" not in stage.train for stage in cfg.optimization.stages)
    from vlm_sweeps.train.runner import frozen_features

    features = frozen_features(cfg, s) if never_trained else None
    if features is not None:
        s.feature_cache["eval"] = features.cache.stats
    answerer = Answerer(s.model, s.tokenizer, s.fmt, s.transforms, s.device,
                        blind=cfg.eval.blind if blind is None else blind, autocast_dtype=s.autocast,
                        features=features)
    result = run_suite(answerer, list(cfg.benchmarks.suite), world_dir=s.world, data_root=s.data_root,
                       max_examples=cfg.benchmarks.max_examples, batch_size=cfg.benchmarks.batch_size,
                       seed=cfg.seed, progress=cfg.run.progress, cache=cache, model_key=key,
                       continue_on_missing=cfg.eval.continue_on_missing)
    if features is not None:
        features.cache.evict()
    if skipped is not None:
        skipped.extend(result.skipped)
    return result.metrics, result.predictions

