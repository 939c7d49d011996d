"""One job, as a recipe: validate -> identify -> (skip if finished) -> setup -> train the stage
plan -> evaluate the suite -> track. `run_job` is what the Hydra entry point and launchers call;
`train_and_evaluate` is the recipe itself. Its steps live in their own modules: `setup` (world,
tokenizer, model from its components), `data.checks` (records and images before a run opens),
`train.runner` (the stage plan), `eval.evaluation` (the suite)."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from vlm_sweeps import atomic, identity, locks, naming, tracking, tracking_process, validate
from vlm_sweeps.config import to_container
from vlm_sweeps.data.checks import check_benchmarks, check_data, llava_files  # noqa: F401  (re-exported: job.check_data)
from vlm_sweeps.eval import pending
from vlm_sweeps.eval.evaluation import evaluate
from vlm_sweeps.redact import redact_uri
from vlm_sweeps.setup import Setup, device_of, load_tokenizer, seed_everything, setup  # noqa: F401
from vlm_sweeps.train import distributed, final_weights
from vlm_sweeps.train.checkpoint import Checkpointer, trained_parts
from vlm_sweeps.train.runner import frozen_features, shared_tokens, train  # noqa: F401
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
    evaluated: list[str] = field(default_factory=list)  # a FINISHED run's lacking benchmarks, evaluated now


def axes_of(cfg: Any) -> dict[str, str]:
    """The axes of the axis table (naming.AXIS_TABLE), design axes and context, as logged and shown:
    a group's option name, a number rendered by str(float) (str(int) for integer ones)."""
    values = {}
    for axis in naming.AXIS_TABLE:
        value = cfg[axis.name]
        values[axis.name] = str(value.name) if axis.group else str(int(value) if axis.integer else float(value))
    return values


def run_name(axes: dict[str, str]) -> str:
    return " ".join(f"{k}={axes[k]}" for k in naming.design_axes())


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
    unreadable = check_benchmarks(cfg)  # nor does a missing benchmark file (it would fail after training)
    with distributed.session(cfg.run.parallel, device_of(cfg)) as dist, terminated_as_interrupt(), \
            contextlib.ExitStack() as owned:
        checkpointer = Checkpointer(Path(cfg.paths.runs_dir).resolve() / signature, cfg.run.checkpoint_every)
        tracker = None  # the tracking store is rank 0's; the other ranks follow its decision
        if dist.is_main:
            try:
                owned.enter_context(own(cfg, signature, checkpointer))
                tracker = _open_run(cfg, signature, sweep_id, checkpointer, unreadable)
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
                metrics, timings = train_and_evaluate(cfg, tracker, checkpointer, dist, records, unreadable)
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
                fail(tracker, err)
            raise
        if tracker:
            try:
                tracker.finish()
            except tracking_process.TrackingError as err:  # a write was lost: the run is not FINISHED
                raise tracking_process.TrackingError(f"{err}; {resume_advice(tracker)}") from None
        return JobResult(signature, run_id, dist.broadcast(metrics), timings=timings)


def fail(tracker: Any, err: BaseException) -> None:
    """Mark the job's run FAILED with `err`; where the store cannot take that either (a tracking server
    gone), raise a TrackingError that says both, in place of `err`."""
    try:
        tracker.fail(err)
    except Exception as lost:  # noqa: BLE001 - MLflow's or the tracking process's error, said with err's
        said = str(err) if isinstance(err, tracking_process.TrackingError) else tracking.error_message(err)
        raise tracking_process.TrackingError(
            f"{said}; the run could not be marked FAILED ({str(lost)[:300]}); {resume_advice(tracker)}") from None


def resume_advice(tracker: Any) -> str:
    """What a user does about a run its store lost writes of."""
    return (f"run {tracker.run_id} in {redact_uri(tracker.uri)}: once the store answers, re-run the same command, "
            "which resumes the run from its checkpoint and logs again what was lost")


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


def _open_run(cfg: Any, signature: str, sweep_id: str | None, checkpointer: Checkpointer,
              unreadable: dict[str, str] | None = None
              ) -> tracking_process.RemoteTracker | tracking.JobTracker | JobResult:
    """The MLflow run to train into (found again and reopened, or created), or the result of the
    FINISHED run that makes this job a skip. `unreadable`: benchmarks whose files are missing
    (check_benchmarks, eval.continue_on_missing=true), which a FINISHED run goes on lacking."""
    tracker = tracking_process.open_tracker(
        tracking.resolve_uri(cfg.tracking.uri), cfg.tracking.experiment, separate_process=cfg.tracking.process,
        environment=tracking.http_environment(cfg.tracking.write_retries, cfg.tracking.write_timeout_s))
    done = tracker.finished_record(signature)
    axes = axes_of(cfg)
    if done is not None:
        lacking = pending.lacking_for(cfg, done["metrics"], done["tags"], done["params"])
        lacking = [b for b in lacking if b not in (unreadable or {})]  # skipped, as warned
        if not lacking:
            log.info("%s [%s] already FINISHED in run %s: skipped", run_name(axes), signature, done["run_id"])
            return JobResult(signature, done["run_id"], done["metrics"], skipped=True)
        # the trained model is there: evaluate what its run lacks, on its checkpoint; nothing trains
        log.info("%s [%s] FINISHED in run %s, without %s: evaluating them on its checkpoint", run_name(axes),
                 signature, done["run_id"], ", ".join(lacking))
        tracker.attach(done["run_id"])
        if sweep_id:
            tracker.set_tag(naming.TAG_EVALUATED_IN_SWEEP, sweep_id)
        metrics = evaluate_finished(cfg, tracker, checkpointer, done, lacking)
        return JobResult(signature, done["run_id"], {**done["metrics"], **metrics}, skipped=True,
                         evaluated=lacking)
    study = {naming.TAG_STUDY: cfg.study.name, naming.TAG_EXPERIMENT: cfg.study.experiment,
             naming.TAG_SECTION: cfg.study.section}
    saved = checkpointer.load()
    if saved is not None and saved.get("run_id") in tracker.unfinished(signature):
        run_id = tracker.reopen(saved["run_id"], sweep_id)  # the same MLflow run, continued
        tracker.set_tag(naming.TAG_PREFIX + "resumed_from_step", str(sum(saved["stage_steps"])))
        log.info("%s [%s] resumes MLflow run %s from its checkpoint", run_name(axes), signature, run_id)
    else:
        if saved is not None:  # its run is not in this store (another store, or a reset one): keep it aside
            aside = checkpointer.folder / final_weights.aside_name(saved.get("run_id"))
            checkpointer.path.replace(aside)
            log.warning("checkpoint of run %s is not resumable in %s; kept as %s", saved.get("run_id"),
                        redact_uri(tracker.uri), aside)
        run_id = tracker.start(signature, to_container(cfg), axes, sweep_id, run_name(axes))
        log.info("%s [%s] -> MLflow run %s in %s", run_name(axes), signature, run_id, redact_uri(tracker.uri))
    study = {k: str(v) for k, v in study.items() if v is not None}
    if study:
        tracker.set_tags(study)
    return tracker


def train_and_evaluate(cfg: Any, tracker: tracking_process.RemoteTracker | tracking.JobTracker | None,
                       checkpointer: Checkpointer, dist: distributed.Distributed | None = None,
                       records: dict[str, list] | None = None, unreadable: dict[str, str] | None = None
                       ) -> tuple[dict[str, float], dict[str, float]]:
    """Set up, train, evaluate. Several processes: every rank trains; rank 0 (the one with a
    `tracker`) logs and evaluates the full model while the others wait, and returns the metrics.
    `records`: check_data's, `unreadable`: check_benchmarks', when the caller checked them already
    (a suite whose every benchmark lacks its files, eval.continue_on_missing=true: nothing is evaluated)."""
    from vlm_sweeps.train.stages import count_parameters

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    records = check_data(cfg) if records is None else records
    unreadable = check_benchmarks(cfg) if unreadable is None else unreadable
    s = setup(cfg, dist)
    s.records.update(records)
    timings["setup_s"] = time.perf_counter() - t0
    if tracker is None:  # not rank 0: train, then wait for rank 0's evaluation
        train(cfg, s, lambda metrics, step: None, timings, checkpointer, None)
        s.dist.barrier()
        return {}, timings
    # what the LLM sees of each image (the projector axis' token budget), logged before training
    tracker.set_tag(naming.TAG_VISUAL_TOKENS, str(s.model.num_visual_tokens))
    step = train(cfg, s, tracker.log_curve, timings, checkpointer, tracker.run_id,
                 on_plan=lambda total: tracker.set_tag(naming.TAG_TOTAL_STEPS, str(total)),
                 shared=SharedAlign.of(cfg), on_align=tracker.tag_align)
    for part, n in count_parameters(s.model).items():
        tracker.set_tag(f"{naming.TAG_PREFIX}params.{part}", str(n["total"]))
    t_eval = time.perf_counter()
    skipped: list[str] = []
    if cfg.benchmarks.suite and all(b in unreadable for b in cfg.benchmarks.suite):
        metrics, predictions, skipped = {}, {}, list(cfg.benchmarks.suite)  # warned before training
    else:
        metrics, predictions = evaluate(cfg, s, skipped=skipped)
    if skipped:
        tracker.set_tag(naming.TAG_SKIPPED_BENCHMARKS, ",".join(skipped))
    timings["eval_s"] = time.perf_counter() - t_eval
    for stage_name, stats in s.feature_cache.items():
        tracker.set_tag(f"{naming.TAG_FEATURE_CACHE}.{stage_name}",
                        f"hits={stats.hits} misses={stats.misses} written={stats.written} evicted={stats.evicted}")
    timings["job_s"] = time.perf_counter() - t0
    evaluated = [b for b in cfg.benchmarks.suite if b not in skipped]
    metrics = log_evaluation(cfg, tracker, metrics, predictions, evaluated, step, first=True)
    tracker.log_metrics({naming.VISUAL_TOKENS: float(s.model.num_visual_tokens)}, step)
    tracker.log_metrics(time_metrics(timings, checkpointer.earlier), step)
    s.dist.barrier()
    return metrics, timings


def time_metrics(timings: dict[str, float], earlier: dict[str, float]) -> dict[str, float]:
    """`time/<k>`: the seconds of every attempt of the job (`earlier`: those before this one, up to
    their last checkpoint), and for a resumed job `time/this_attempt/<k>`: this attempt's alone."""
    logged = {f"time/{k}": earlier.get(k, 0.0) + timings.get(k, 0.0) for k in {*earlier, *timings}}
    if earlier:
        logged.update({f"time/this_attempt/{k}": v for k, v in timings.items()})
    return logged


def log_evaluation(cfg: Any, tracker: Any, metrics: dict[str, float], predictions: dict[str, list[dict]],
                   evaluated: list[str], step: int, first: bool) -> dict[str, float]:
    """Log an evaluation into the job's run: `blind/` before every name for the blind control, the
    predictions as artifacts, each benchmark's evaluation setting (every time: examples scored, slim
    size, version, generation settings; eval/settings.py), and (after the first) which slim size each
    benchmark was evaluated on (eval/pending.py)."""
    from vlm_sweeps.eval import settings as eval_settings

    scored = {b: predictions[b] for b in evaluated if b in predictions}
    setting_tags = eval_settings.tags(cfg, scored, bool(cfg.eval.blind), metrics)
    prefix = naming.BLIND_PREFIX if cfg.eval.blind else ""
    metrics = {prefix + k: v for k, v in metrics.items()}
    tracker.log_metrics(metrics, step)
    for name, rows in predictions.items():
        tracker.log_records(rows, f"predictions/{prefix}{name}.jsonl")
    tracker.set_tags(setting_tags)
    if not first or cfg.eval.blind:
        setting = pending.setting(cfg.benchmarks.max_examples)
        tracker.set_tags({pending.evaluated_tag(b, bool(cfg.eval.blind)): setting for b in evaluated})
    return metrics


def evaluate_finished(cfg: Any, tracker: Any, checkpointer: Checkpointer, done: dict, lacking: list[str]
                      ) -> dict[str, float]:
    """The benchmarks `lacking` of a FINISHED run, on the trained model of its own final checkpoint
    (final_weights: `checkpoint.pt`, or `checkpoint.<run id>.pt` where another store's run of this
    signature took its place), logged into that run (it stays FINISHED). No checkpoint: say so and
    what to do; only another run's (or one at another step): final_weights.NotItsWeights, nothing logged."""
    import copy

    found = final_weights.find([checkpointer.folder], done["run_id"], done["steps"])
    if found is None:
        raise validate.ConfigError([
            f"run {done['run_id']} is FINISHED but lacks {', '.join(lacking)}, and its checkpoint {checkpointer.path} "
            "is gone, so it cannot be evaluated without training again: evaluate a copy of the checkpoint with "
            f"`python -m vlm_sweeps.evaluate eval.run_id={done['run_id']} eval.checkpoint=PATH`, or delete the run "
            f"(`mlflow runs delete --run-id {done['run_id']}`) and re-run to train it again"])
    t0 = time.perf_counter()
    sub = copy.deepcopy(cfg)
    sub.benchmarks.suite = list(lacking)
    path, saved = found
    s = setup(sub)
    final_weights.load(s.model, saved["model"], trained_parts(cfg),
                       f"checkpoint {path} of run {done['run_id']} does not fit the model its config builds")
    skipped: list[str] = []
    metrics, predictions = evaluate(sub, s, skipped=skipped)
    evaluated = [b for b in lacking if b not in skipped]
    logged = log_evaluation(sub, tracker, metrics, predictions, evaluated, done["steps"], first=False)
    log.info("evaluated %s on the checkpoint of run %s in %.1f s", ", ".join(evaluated), done["run_id"],
             time.perf_counter() - t0)
    return logged


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

