"""One job, as a recipe: validate -> identify -> (skip if finished) -> setup -> train the stage
plan -> evaluate the suite -> track. `run_job` is what the Hydra entry point and launchers call."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shlex
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from vlm_sweeps import atomic, cpu_share, identity, locks, naming, tracking, tracking_process, validate
from vlm_sweeps.redact import redact_uri
from vlm_sweeps.eval import registry
from vlm_sweeps.config import to_container
from vlm_sweeps.train import distributed
from vlm_sweeps.train.checkpoint import Checkpointer
from vlm_sweeps.train.shared_align import SharedAlign

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    signature: str
    run_id: str
    metrics: dict[str, float]
    skipped: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False  # run.dry_run: only the estimates were printed; nothing trained or tracked


def axes_of(cfg: Any) -> dict[str, str]:
    """The design-axis params (naming.AXES) plus scale and seed, as logged and shown."""
    values = {"encoder": cfg.encoder.name, "resize": cfg.resize.name, "optimization": cfg.optimization.name,
              "llm": cfg.llm.name, "epochs": str(float(cfg.epochs)), "data": cfg.data.name,
              "scale": cfg.scale.name, "seed": str(cfg.seed)}
    assert set(naming.AXES) | set(naming.CONTEXT_PARAMS) == set(values)
    return values


def run_name(axes: dict[str, str]) -> str:
    return " ".join(f"{k}={axes[k]}" for k in naming.AXES)


def run_job(cfg: Any, sweep_id: str | None = None) -> JobResult:
    """One job; with several processes (torchrun, SLURM tasks: train/distributed.py) every process
    calls it, rank 0 alone tracks, checkpoints and evaluates, and all return rank 0's result.
    Every input is checked before a run is opened; rank 0 owns the signature (one process at a
    time, on any host) while it trains; SIGTERM is an interruption like Ctrl-C (resumable)."""
    validate.check(cfg, world_size=distributed.detect().world_size)
    signature = identity.signature(cfg)
    if cfg.run.dry_run:  # sizes and costs from the configs alone: no weights, data or tracking needed
        from vlm_sweeps.dryrun import report

        print(report(cfg))
        return JobResult(signature, "dry-run (nothing trained or tracked)", {}, dry_run=True)
    records = check_data(cfg)  # a data error leaves no FAILED run behind: none is opened yet
    with distributed.session(cfg.run.parallel, _device(cfg)) as dist, terminated_as_interrupt(), \
            contextlib.ExitStack() as owned:
        checkpointer = Checkpointer(Path(cfg.paths.runs_dir).resolve() / signature, cfg.run.checkpoint_every)
        tracker = None  # the tracking store is rank 0's; the other ranks follow its decision
        if dist.is_main:
            try:
                owned.enter_context(own(cfg, signature, checkpointer))
                tracker = _open_run(cfg, signature, sweep_id, checkpointer)
            except BaseException as err:
                dist.broadcast(RuntimeError(f"rank 0 could not open its run: {tracking.error_message(err)}"))
                raise
        shared = dist.broadcast(tracker if isinstance(tracker, JobResult) else getattr(tracker, "run_id", None))
        if isinstance(shared, Exception):
            raise shared
        if isinstance(shared, JobResult):  # finished before: a skip
            return shared
        run_id = shared
        heartbeat = tracking.Heartbeat(tracker, cfg.tracking.heartbeat_s, resume_command()) if tracker else None
        try:
            try:
                metrics, timings = train_and_evaluate(cfg, tracker, checkpointer, dist, records)
            finally:
                if heartbeat:  # no beat after the run's last state
                    heartbeat.stop()
        except (KeyboardInterrupt, SystemExit):
            # preempted or requeued (submitit exits this way), Ctrl-C, SIGTERM: the run stays open for the resume
            if tracker:
                tracker.interrupted()
            raise
        except BaseException as err:
            if tracker:
                tracker.fail(err)
            raise
        if tracker:
            tracker.finish()
        return JobResult(signature, run_id, dist.broadcast(metrics), timings=timings)


class Terminated(SystemExit):
    """SIGTERM (`kill`, `timeout`, docker stop, systemd), raised where the job is, so that it
    ends like a Ctrl-C: its run marked interrupted and resumable from its last checkpoint."""


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Terminated while the block runs, where nobody else handles it (under
    submitit, which handles its own signals, nothing changes)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: interrupting the job (its run stays resumable)")
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def own(cfg: Any, signature: str, checkpointer: Checkpointer) -> Iterator[None]:
    """Hold the signature for this process: `<runs_dir>/<signature>.owner`, locked (fcntl: freed
    when the owner exits or dies). Another process of the same signature waits for it
    (`run.wait_for_owner`, then finds the run finished, or resumes it) or exits naming the owner:
    never two trainings of one signature, nor two resumes logging into one run."""
    with locks.exclusive(checkpointer.folder.with_name(f"{signature}.owner"), f"signature {signature}",
                         wait=cfg.run.wait_for_owner):
        atomic.remove_stale(checkpointer.folder)  # half-written checkpoints of a killed owner
        yield


def resume_command() -> str | None:
    """The command that reruns this job (and resumes its run), credentials redacted: the Hydra
    overrides of this job, from its working directory; None outside a Hydra job (SLURM requeues)."""
    from hydra.core.hydra_config import HydraConfig

    from vlm_sweeps.redact import redact_text

    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:
        return None
    return redact_text(f"cd {shlex.quote(os.getcwd())} && python -m vlm_sweeps.run {shlex.join(overrides)}".rstrip())


def _open_run(cfg: Any, signature: str, sweep_id: str | None, checkpointer: Checkpointer
              ) -> tracking_process.RemoteTracker | tracking.JobTracker | JobResult:
    """The MLflow run to train into (found again and reopened, or created), or the result of the
    FINISHED run that makes this job a skip."""
    tracker = tracking_process.open_tracker(tracking.resolve_uri(cfg.tracking.uri), cfg.tracking.experiment,
                                            separate_process=cfg.tracking.get("process", True))
    done = tracker.finished_run(signature)
    axes = axes_of(cfg)
    if done is not None:
        log.info("%s [%s] already FINISHED in run %s: skipped", run_name(axes), signature, done[0])
        return JobResult(signature, done[0], done[1], skipped=True)
    saved = checkpointer.load()
    if saved is not None and saved.get("run_id") in tracker.unfinished(signature):
        run_id = tracker.reopen(saved["run_id"], sweep_id)  # the same MLflow run, continued
        tracker.set_tag(naming.TAG_PREFIX + "resumed_from_step", str(sum(saved["stage_steps"])))
        log.info("%s [%s] resumes MLflow run %s from its checkpoint", run_name(axes), signature, run_id)
    else:
        if saved is not None:  # its run is not in this store (another store, or a reset one): keep it aside
            aside = checkpointer.folder / f"checkpoint.{saved.get('run_id') or 'unknown'}.pt"
            checkpointer.path.replace(aside)
            log.warning("checkpoint of run %s is not resumable in %s; kept as %s", saved.get("run_id"),
                        redact_uri(tracker.uri), aside)
        run_id = tracker.start(signature, to_container(cfg), axes, sweep_id, run_name(axes))
        log.info("%s [%s] -> MLflow run %s in %s", run_name(axes), signature, run_id, redact_uri(tracker.uri))
    return tracker


def _device(cfg: Any) -> torch.device:
    if cfg.run.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.run.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """Everything a job builds before training: data files, tokenizer, model, transforms."""

    model: Any
    tokenizer: Any
    fmt: Any
    transforms: list
    device: torch.device
    world: Path | None
    files: dict[str, Path]
    data_root: Path
    autocast: torch.dtype | None
    records: dict[str, list] = field(default_factory=dict)  # stage -> records already read (check_data)
    feature_cache: dict[str, Any] = field(default_factory=dict)  # stage -> its feature-cache CacheStats
    dist: distributed.Distributed = field(default_factory=distributed.Distributed)  # the job's processes


def setup(cfg: Any, dist: distributed.Distributed | None = None) -> Setup:
    from vlm_sweeps.data.synthetic import ensure_world
    from vlm_sweeps.models.builder import build_vlm, image_transforms
    from vlm_sweeps.models.prompts import get_format

    cpu_share.start(cfg.run.threads)  # this job's share of the host's CPUs, or run.threads
    cache_dir = Path(cfg.paths.cache_dir).resolve()
    data_root = Path(cfg.paths.data_root).resolve()
    # The synthetic world is built once per settings and shared by every job that uses it.
    needs_world = cfg.data.source == "synthetic" or any(registry.get(b).synthetic for b in cfg.benchmarks.suite)
    dist = dist or distributed.Distributed(device=_device(cfg))
    with dist.main_first():  # rank 0 builds the shared caches, the other ranks then read them
        world = ensure_world(cache_dir, cfg.data.synthetic) if needs_world else None
        tokenizer = load_tokenizer(cfg, world, cache_dir)
    if cfg.data.source == "synthetic":
        files = {"align": world / "align.json", "finetune": world / "finetune.json"}
    else:
        files = llava_files(cfg)
    seed_everything(cfg.seed)  # the same initial weights on every rank
    model = build_vlm(cfg, tokenizer).to(dist.device)
    return Setup(model, tokenizer, get_format(cfg.llm.prompt), image_transforms(cfg, model), dist.device, world,
                 files, data_root, torch.bfloat16 if cfg.scale.precision == "bf16" else None, dist=dist)


def llava_files(cfg: Any) -> dict[str, Path]:
    data_root = Path(cfg.paths.data_root).resolve()
    return {"align": data_root / str(cfg.data.align_file), "finetune": data_root / str(cfg.data.finetune_file)}


def check_data(cfg: Any, stages: list[str] | None = None) -> dict[str, list]:
    """Real mixes: read the records of every stage of the plan (or of `stages`) and check that each
    image file exists (unless `run.check_images=false`), so unreadable files, image paths escaping
    the data root and missing images stop a job before any weights load. Corrupt images are caught
    when read (data/instruct.py). Returns {stage: records} ({} for synthetic data, made by us)."""
    from vlm_sweeps.data.llava import check_images_exist, load_llava

    if cfg.data.source != "llava":
        return {}
    files, records = llava_files(cfg), {}
    for stage in cfg.optimization.stages:
        if stages is not None and stage.name not in stages:
            continue
        records[stage.name] = load_llava(files[stage.name], drop_text_only=cfg.data.drop_text_only)
        if cfg.run.check_images:
            check_images_exist(records[stage.name], files[stage.name])
    return records


def train(cfg: Any, s: Setup, log_fn, timings: dict[str, float] | None = None,
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
    plan = list(cfg.optimization.stages)
    if align_only:
        if plan[0].name != "align":
            raise validate.ConfigError([f"optimization={cfg.optimization.name} has no align stage to train alone"])
        plan = plan[:1]
    datasets, totals, token_entries = [], [], []
    epochs_of = [cfg.epochs if stage.name == "finetune" else cfg.scale.align_epochs
                 for stage in plan]  # the epochs axis is the finetune stage's
    for stage, epochs in zip(plan, epochs_of):
        records = (s.records[stage.name] if stage.name in s.records
                   else load_llava(s.files[stage.name], drop_text_only=cfg.data.drop_text_only))
        datasets.append(InstructDataset(records, s.tokenizer, s.fmt, s.transforms, cfg.scale.max_seq_len,
                                        s.model.num_patches))
        token_entries.append(shared_tokens(cfg, s, stage.name, datasets[-1]))
        totals.append(steps_for(datasets[-1].modalities(), cfg.scale[stage.name].batch_size, epochs))
    if on_plan is not None:
        on_plan(sum(totals))
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

        def on_checkpoint(stage_step, total, optimizer, scheduler, index=index, parts=frozenset(trained_parts)):
            if checkpointer is not None and checkpointer.due(stage_step, total):
                model_state = s.dist.model_state(trainee, parts)  # FSDP: gathered on every rank
                optimizer_state = s.dist.optimizer_state(trainee, optimizer)
                checkpointer.save({"run_id": run_id, "stage_index": index, "stage_step": stage_step,
                                   "stage_steps": stage_steps + [stage_step], "model": model_state,
                                   "optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
                                   "rng": rng_state()})

        def run_stage(log_fn=log_fn, resume=resume, on_checkpoint=on_checkpoint, index=index, stage=stage):
            return train_stage(trainee, stage, cfg.scale[stage.name], datasets[index], epochs_of[index],
                               seed=cfg.seed + index, device=s.device, log_fn=log_fn, step_offset=step,
                               log_every=cfg.run.log_every, progress=cfg.run.progress, autocast_dtype=s.autocast,
                               num_workers=cfg.run.num_workers, resume=resume, on_checkpoint=on_checkpoint,
                               fail_at_step=cfg.run.fail_at_step, dist=s.dist)

        started = time.perf_counter()
        if stage.name == "align" and shared is not None:
            if checkpointer is not None and checkpointer.every > 0:  # makes the run resumable meanwhile
                checkpointer.save({"run_id": run_id, "stage_index": 0, "stage_step": 0, "stage_steps": [0],
                                   "shared_align": shared.signature})
            state, source = align_once(shared, s.model, stage, run_stage, log_fn)
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
        log.info("stage %s: %d steps, final loss %.3f%s", stage.name, steps, final_loss,
                 f", {samples / max(seconds, 1e-9):.1f} samples/s" if samples is not None else f" ({source})")
        if cache is not None:
            cache.cache.evict()
            stats = s.feature_cache[stage.name] = cache.cache.stats
            log.info("stage %s: feature cache %d hits, %d misses, %d written, %d evicted", stage.name,
                     stats.hits, stats.misses, stats.written, stats.evicted)
    s.dist.finish(trainee, s.model)
    return step


def shared_tokens(cfg: Any, s: Setup, stage_name: str, dataset: Any) -> Path | None:
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


def frozen_features(cfg: Any, s: Setup, stage: Any = None):
    """The frozen-feature cache of the model's encoder as it is now, for a stage that does not train
    it, or for evaluation (`stage` None); None when the cache is off, the stage trains the encoder,
    or trains under FSDP (DDP and one process use it)."""
    if not cfg.run.feature_cache or (stage is not None and "encoder" in stage.train):
        return None
    if stage is not None and s.dist.mode == "fsdp":  # the sharded encoder runs inside FSDP's forward only
        return None
    from vlm_sweeps.features import FrozenFeatures, open_cache

    return FrozenFeatures.for_model(open_cache(cfg, s.model.feature_dtype), s.model, s.transforms)


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


def train_and_evaluate(cfg: Any, tracker: tracking_process.RemoteTracker | tracking.JobTracker | None,
                       checkpointer: Checkpointer, dist: distributed.Distributed | None = None,
                       records: dict[str, list] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Set up, train, evaluate. Several processes: every rank trains; rank 0 (the one with a
    `tracker`) logs and evaluates the full model while the others wait, and returns the metrics.
    `records`: check_data's, when the caller checked the data already."""
    from vlm_sweeps.train.stages import count_parameters

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    records = check_data(cfg) if records is None else records
    s = setup(cfg, dist)
    s.records.update(records)
    timings["setup_s"] = time.perf_counter() - t0
    if tracker is None:  # not rank 0: train, then wait for rank 0's evaluation
        train(cfg, s, lambda metrics, step: None, timings, checkpointer, None)
        s.dist.barrier()
        return {}, timings
    step = train(cfg, s, tracker.log_curve, timings, checkpointer, tracker.run_id,
                 on_plan=lambda total: tracker.set_tag(naming.TAG_TOTAL_STEPS, str(total)),
                 shared=SharedAlign.of(cfg), on_align=tracker.tag_align)
    for part, n in count_parameters(s.model).items():
        tracker.set_tag(f"{naming.TAG_PREFIX}params.{part}", str(n["total"]))
    t_eval = time.perf_counter()
    skipped: list[str] = []
    metrics, predictions = evaluate(cfg, s, skipped=skipped)
    if skipped:
        tracker.set_tag(naming.TAG_SKIPPED_BENCHMARKS, ",".join(skipped))
    timings["eval_s"] = time.perf_counter() - t_eval
    for stage_name, stats in s.feature_cache.items():
        tracker.set_tag(f"{naming.TAG_FEATURE_CACHE}.{stage_name}",
                        f"hits={stats.hits} misses={stats.misses} written={stats.written} evicted={stats.evicted}")
    timings["job_s"] = time.perf_counter() - t0
    tracker.log_metrics(metrics, step)
    tracker.log_metrics({f"time/{k}": v for k, v in timings.items()}, step)
    for name, rows in predictions.items():
        tracker.log_records(rows, f"predictions/{name}.jsonl")
    s.dist.barrier()
    return metrics, timings


def run_align(cfg: Any) -> dict[str, str]:
    """The align stage of `cfg`'s plan alone, into its shared align checkpoint, tracked nowhere
    (the SLURM align job that a group of jobs with one align signature depends on; each of them
    logs the align's curve into its own run when it loads it). Nothing to do when it exists."""
    validate.check(cfg)
    shared = SharedAlign.of(cfg)
    if shared is None:
        raise validate.ConfigError([f"optimization={cfg.optimization.name} with run.share_align="
                                    f"{cfg.run.share_align}: no shared align stage to train"])
    outcome = {"align_signature": shared.signature, "path": str(shared.path)}
    if shared.exists():
        log.info("align %s already in %s: nothing to do", shared.signature, shared.path)
        return {**outcome, "source": "exists"}
    records = check_data(cfg, stages=["align"])
    s = setup(cfg)
    s.records.update(records)

    def log_curve(metrics: dict[str, float], step: int) -> None:
        log.info("align %s step %d: %s", shared.signature, step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))

    sources: list[str] = []
    train(cfg, s, log_curve, shared=shared, align_only=True, on_align=lambda _, source: sources.append(source))
    return {**outcome, "source": sources[0]}


def load_tokenizer(cfg: Any, world: Path | None, cache_dir: Path):
    """Tiny: the in-process tokenizer trained on the synthetic corpus. Full: the LLM's own from its
    local checkpoint folder, with a pad token added (the embeddings are resized to match in
    models/llm.py)."""
    if not cfg.scale.pretrained:
        from vlm_sweeps.models.tokenizer import cached_tokenizer

        if world is None:
            raise validate.ConfigError([f"scale={cfg.scale.name} trains its tokenizer on the synthetic corpus; "
                                        "use data=synthetic (or scale=full for real data)"])
        return cached_tokenizer(world / "corpus.txt", cfg.scale.vocab_size, cache_dir)
    from vlm_sweeps.models.tokenizer import load_pretrained_tokenizer
    from vlm_sweeps.models.weights import models_dir_of

    return load_pretrained_tokenizer(cfg.llm.id, models_dir_of(cfg.paths.models_dir), cfg.scale.max_seq_len)
