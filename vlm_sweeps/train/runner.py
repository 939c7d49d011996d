"""The stage runner: trains a job's stage plan (components.Stage entries), resuming from its
checkpoint, sharing the align stage across jobs, with the frozen-feature and token caches."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from vlm_sweeps import components, identity, validate
from vlm_sweeps.train.checkpoint import Checkpointer
from vlm_sweeps.train.shared_align import SharedAlign

log = logging.getLogger("vlm_sweeps.job")


def train(cfg: Any, s: Any, log_fn, timings: dict[str, float] | None = None,
          checkpointer: Checkpointer | None = None, run_id: str | None = None, on_plan=None,
          shared: SharedAlign | None = None, on_align=None, align_only: bool = False) -> int:
    """Train the stage plan, resuming from `checkpointer`'s checkpoint when it holds one.
    With `shared`, the align stage is trained once per align signature and loaded by every other
    job (train/shared_align.py); `on_align(align signature, "trained" | "reused")` is told which.
    `align_only`: the align stage alone (a SLURM align job). Returns the plan's optimizer steps.
    With several processes every rank calls it (checkpoints gather on every rank, rank 0 writes)
    and rank 0's `s.model` ends trained; the align stage is then not shared (SharedAlign.of)."""
    from vlm_sweeps.data import token_cache
    from vlm_sweeps.data.instruct import InstructDataset
    from vlm_sweeps.data.llava import load_llava
    from vlm_sweeps.train.checkpoint import rng_state
    from vlm_sweeps.train.loop import train_stage
    from vlm_sweeps.train.shared_align import TRAINED, align_once

    from vlm_sweeps.data.samplers import steps_for

    saved = checkpointer.load() if checkpointer is not None else None
    if saved is not None and "shared_align" in saved:
        saved = None  # interrupted in a shared align: nothing of its own to restore; align_once resumes it
    elif saved is not None:  # a job with a checkpoint of its own finishes what it started (past or in its align)
        shared = None
    plan = list((s.components or components.of(cfg)).plan)
    if align_only:
        if plan[0].name != "align":
            raise validate.ConfigError([f"optimization={cfg.optimization.name} has no align stage to train alone"])
        plan = plan[:1]
    datasets, totals, token_entries = [], [], []
    for stage in plan:
        records = (s.records[stage.name] if stage.name in s.records
                   else load_llava(s.files[stage.name], drop_text_only=cfg.data.drop_text_only))
        datasets.append(InstructDataset(records, s.tokenizer, s.fmt, s.transforms, cfg.scale.max_seq_len,
                                        s.model.num_patches))
        token_entries.append(shared_tokens(cfg, s, stage.name, datasets[-1]))
        totals.append(steps_for(datasets[-1].modalities(), stage.hparams.batch_size, stage.epochs))
    if on_plan is not None:
        on_plan(sum(totals))
    # the training curve so far travels in the checkpoint: a resume logs again what its store lacks
    # (a write lost before the interruption; the tracker skips the points it has)
    curve: list[tuple[int, dict[str, float]]] = [(int(k), dict(v)) for k, v in (saved or {}).get("curve", [])]
    for point_step, metrics in curve:
        log_fn(metrics, point_step)

    def recorded(metrics: dict[str, float], point_step: int) -> None:
        curve.append((point_step, dict(metrics)))
        log_fn(metrics, point_step)

    if saved is not None:
        s.model.load_state_dict(saved["model"], strict=False)
        log.info("resuming from %s (stage %d, step %d)", checkpointer.path, saved["stage_index"], saved["stage_step"])
    trainee = s.dist.prepare(s.model)  # FSDP: a sharded copy; else s.model itself
    step, trained_parts, stage_steps = 0, set(), []
    for index, stage in enumerate(plan):
        trained_parts |= set(stage.train)
        if saved is not None and index < saved["stage_index"]:  # finished before the interruption
            stage_steps.append(saved["stage_steps"][index])
            step += stage_steps[-1]
            continue
        resume = saved if saved is not None and index == saved["stage_index"] else None
        cache = frozen_features(cfg, s, stage)
        datasets[index].features = cache

        def on_checkpoint(stage_step, total, optimizer, scheduler, index=index, parts=frozenset(trained_parts),
                          stage=stage):
            if checkpointer is not None and checkpointer.due(stage_step, total):
                model_state = s.dist.model_state(trainee, parts)  # FSDP: gathered on every rank
                optimizer_state = s.dist.optimizer_state(trainee, optimizer)
                spent = dict(timings or {})
                spent[f"train_{stage.name}_s"] = time.perf_counter() - started
                checkpointer.save({"run_id": run_id, "stage_index": index, "stage_step": stage_step,
                                   "stage_steps": stage_steps + [stage_step], "model": model_state,
                                   "optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
                                   "rng": rng_state(), "curve": curve, "timings": checkpointer.totals(spent)})

        def run_stage(log_fn=recorded, resume=resume, on_checkpoint=on_checkpoint, index=index, stage=stage):
            return train_stage(trainee, stage, stage.hparams, datasets[index], stage.epochs,
                               seed=stage.seed, device=s.device, log_fn=log_fn, step_offset=step,
                               log_every=cfg.run.log_every, progress=cfg.run.progress, autocast_dtype=s.autocast,
                               num_workers=cfg.run.num_workers, resume=resume, on_checkpoint=on_checkpoint,
                               fail_at_step=cfg.run.fail_at_step, dist=s.dist)

        started = time.perf_counter()
        if stage.name == "align" and shared is not None:
            if checkpointer is not None and checkpointer.every > 0:  # makes the run resumable meanwhile
                checkpointer.save({"run_id": run_id, "stage_index": 0, "stage_step": 0, "stage_steps": [0],
                                   "shared_align": shared.signature})
            state, source = align_once(shared, s.model, stage, run_stage, recorded)
            steps, final_loss, samples = state["steps"], state["final_loss"], None
            seconds = time.perf_counter() - started  # of this job: waiting and loading, for a reused align
        else:
            result = run_stage()
            steps, final_loss, samples, source = result.steps, result.final_loss, result.samples, TRAINED
            seconds = result.seconds
            if token_entries[index] is not None and s.dist.is_main:  # for the next job (once complete)
                token_cache.save(token_entries[index], datasets[index].tokenized(), len(datasets[index]))
        if stage.name == "align" and on_align is not None:
            on_align(identity.align_signature(cfg), source)
        stage_steps.append(steps)
        step += steps
        if timings is not None:
            timings[f"train_{stage.name}_s"] = seconds
        if samples == 0:  # resumed at its end: trained before the interruption
            log.info("stage %s: %d steps, all trained before the interruption", stage.name, steps)
        else:
            log.info("stage %s: %d steps, final loss %.3f%s", stage.name, steps, final_loss,
                     f", {samples / max(seconds, 1e-9):.1f} samples/s" if samples is not None else f" ({source})")
        if cache is not None:
            cache.cache.evict()
            stats = s.feature_cache[stage.name] = cache.cache.stats
            log.info("stage %s: feature cache %d hits, %d misses, %d written, %d evicted", stage.name,
                     stats.hits, stats.misses, stats.written, stats.evicted)
    s.dist.finish(trainee, s.model)
    return step


def shared_tokens(cfg: Any, s: Any, stage_name: str, dataset: Any) -> Path | None:
    """The entry of a stage's tokenized records shared across jobs (data/token_cache.py), its
    tokens adopted by `dataset` when another job wrote it; None when the cache is off
    (`run.token_cache`) or does not apply (a dataset too large to keep its tokens)."""
    from vlm_sweeps.data import token_cache

    if not cfg.run.token_cache or not dataset.memoizes:
        return None
    entry = token_cache.key(s.files[stage_name], cfg.data.drop_text_only, s.tokenizer, s.fmt, cfg.scale.max_seq_len,
                            s.model.num_patches)
    if entry is None:
        return None
    path = token_cache.path_of(Path(cfg.paths.cache_dir).resolve(), entry)
    tokens = token_cache.load(path, len(dataset))
    if tokens is not None:
        dataset.adopt_tokens(tokens)
        log.info("stage %s: %d tokenized records read from %s", stage_name, len(tokens), path)
    return path


def frozen_features(cfg: Any, s: Any, stage: Any = None):
    """The frozen-feature cache of the model's encoder as it is now, for a stage that does not train
    it, or for evaluation (`stage` None); None when the cache is off, the stage trains the encoder,
    or trains under FSDP (DDP and one process use it)."""
    if not cfg.run.feature_cache or (stage is not None and "encoder" in stage.train):
        return None
    if stage is not None and s.dist.mode == "fsdp":  # the sharded encoder runs inside FSDP's forward only
        return None
    from vlm_sweeps.features import FrozenFeatures, open_cache

    return FrozenFeatures.for_model(open_cache(cfg, s.model.feature_dtype), s.model, s.transforms)

