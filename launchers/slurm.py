"""The submit behind `hydra/launcher=slurm`: freeze every job's config, skip finished (and still
queued) work, copy the code the jobs will import into the sweep folder (launchers/snapshot.py),
group the rest by resource class, submit one job array per class (cut at the cluster's array limit)
and return; with `wait=true`, also wait and report each job's outcome."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import DictConfig, OmegaConf

from vlm_sweeps import naming
from vlm_sweeps.redact import URI_ENV, redact_tree, redact_uri

from launchers import align, cluster, manifest, resources, snapshot, store
from launchers.entry import LEAKY_ENV, AlignJob, SweepJob
from launchers.freeze import Composer, FrozenJob, begin_launch, freeze, write_record

log = logging.getLogger(__name__)


def launch(params: dict[str, Any], config: DictConfig, hydra_context: Any,
           job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    options, sweep_dir = begin_launch(params, config)
    sweep_id = sweep_dir.name
    t0 = time.perf_counter()

    composer = Composer.attach(hydra_context.config_loader)
    jobs = [freeze(composer, config, overrides, initial_job_idx + i, Path.cwd())
            for i, overrides in enumerate(job_overrides)]
    for job in jobs:
        job.resource_class, job.resources = resources.resources_for(
            job.config, options["resources"], options["resource_classes"])
    _validate(jobs)
    for job in jobs:
        write_record(job)
    t_frozen = time.perf_counter()

    first = jobs[0].config
    # the overrides as the user gave them, a tracking.uri=... among them: redacted in the manifest
    entries = {job.num: manifest.JobEntry(job.num, job.signature, redact_tree(filter_overrides(job.overrides)),
                                          job.axes, job.resource_class) for job in jobs}
    active_jobs, active_aligns = _active(first["paths"]["root"]) if options["skip_active"] else ({}, {})
    todo = _select(jobs, entries, options, active_jobs)
    groups = align.group(todo, active_aligns, options["min_align_group"])
    t_selected = time.perf_counter()

    # the code the jobs import, copied now: a job queued for days runs what was submitted (launchers/snapshot.py)
    code = snapshot.take(sweep_dir) if options.get("snapshot", True) and (todo or groups) else None
    t_snapshot = time.perf_counter()
    if code is not None:
        options = {**options, "setup": snapshot.setup_lines(code) + list(options.get("setup") or [])}
    folder = Path(str(options["submitit_folder"])).resolve()
    submitted, align_submitted = _submit(todo, groups, options, sweep_id, folder)
    for job, slurm_job in submitted:
        entries[job.num].job_id = str(slurm_job.job_id)
    aligns = []
    for g in groups:
        for member in g.members:
            entries[member.num].align_signature, entries[member.num].depends_on = g.signature, g.job_id
        aligns.append(manifest.AlignEntry(g.signature, str(g.path), [m.num for m in g.members],
                                          g.members[0].resource_class, g.job_id, g.skipped))
    record = manifest.Manifest(sweep_id=sweep_id, submitted_at=datetime.now(timezone.utc).isoformat(),
                               tracking_uri=redact_uri(first["tracking"]["uri"]), experiment=first["tracking"]["experiment"],
                               submitit_folder=str(folder), root=first["paths"]["root"],
                               jobs=[entries[j.num] for j in jobs], aligns=aligns,
                               code=str(code.path) if code is not None else None)
    if initial_job_idx > 0 and record.path().is_file():  # a sweeper that launches in batches
        earlier = manifest.read(record.path())
        record.jobs = [j for j in earlier.jobs if j.num < initial_job_idx] + record.jobs
        record.aligns = earlier.aligns + record.aligns
    manifest.write(record)
    t_done = time.perf_counter()

    _report(record, submitted, align_submitted, {"freeze": t_frozen - t0, "lookup": t_selected - t_frozen,
                                                 "snapshot": t_snapshot - t_selected, "submit": t_done - t_snapshot,
                                                 "total": t_done - t0}, code)
    if options["wait"]:
        return _wait(jobs, entries, submitted, config, dict(align_submitted))
    return [_job_return(job, config, JobStatus.COMPLETED, _summary(entries[job.num])) for job in jobs]


def _validate(jobs: list[FrozenJob]) -> None:
    """The job's own cross-axis checks, before anything is queued: one error for the whole sweep
    (with the number of processes its resources start, e.g. a batch that does not split over them)."""
    from vlm_sweeps import validate

    found: dict[str, list[str]] = {}
    for job in jobs:
        for problem in validate.problems(job.view, resources.world_size(job.resources)):
            found.setdefault(problem, []).append(f"#{job.num}")
    if found:
        raise validate.ConfigError([f"{problem} (jobs {', '.join(nums)})" for problem, nums in found.items()])


def _select(jobs: list[FrozenJob], entries: dict[int, manifest.JobEntry], options: dict[str, Any],
            active: dict[str, str]) -> list[FrozenJob]:
    """The jobs to submit; the others get `skipped` (and the finished run) in their entry.
    `active`: {signature: SLURM job id} of jobs of earlier submits still queued or running."""
    from vlm_sweeps import tracking

    def target(job: FrozenJob) -> tuple[str, str]:
        return job.config["tracking"]["uri"], job.config["tracking"]["experiment"]

    finished = {}
    for store_target in {target(j) for j in jobs}:
        # the store's schema and the experiment exist before any job starts (jobs never race on them)
        tracking.ensure_experiment(*store_target)
        finished[store_target] = store.job_runs(*store_target, finished_only=True) if options["skip_finished"] else {}
    todo, seen = [], set()
    for job in jobs:
        entry, done = entries[job.num], finished[target(job)]
        if job.signature in seen:
            entry.skipped = "duplicate"
        elif job.signature in done and not _lacking(job, done[job.signature]):
            entry.skipped, entry.run_id = "finished", done[job.signature].info.run_id
        elif job.signature in done:  # trained: the job only evaluates what its run lacks (no training)
            entry.run_id, entry.evaluate_only = done[job.signature].info.run_id, _lacking(job, done[job.signature])
            todo.append(job)
        elif job.signature in active:
            entry.skipped, entry.job_id = "active", active[job.signature]
        else:
            todo.append(job)
        seen.add(job.signature)
    return todo


def _lacking(job: FrozenJob, run: Any) -> list[str]:
    """The benchmarks of the job's suite its FINISHED run has not evaluated (vlm_sweeps/eval/pending.py)."""
    from vlm_sweeps.eval import pending

    return pending.lacking_for(job.config, run.data.metrics, run.data.tags, run.data.params)


def _active(root: str) -> tuple[dict[str, str], dict[str, str]]:
    """Of earlier submits under `root`, what is still queued or running: ({signature: SLURM job
    id} of jobs, {align signature: SLURM job id} of align jobs)."""
    earlier, earlier_aligns = {}, {}
    for path in manifest.all_sweeps(root):
        record = manifest.read(path)
        for entry in record.jobs:
            if entry.job_id and not entry.skipped:
                earlier[entry.job_id] = entry.signature
        for a in record.aligns:
            if a.job_id and not a.skipped:
                earlier_aligns[a.job_id] = a.align_signature
    if not earlier and not earlier_aligns:
        return {}, {}
    alive = cluster.alive_jobs() or set()
    return ({sig: job_id for job_id, sig in earlier.items() if job_id in alive},
            {sig: job_id for job_id, sig in earlier_aligns.items() if job_id in alive})


@contextlib.contextmanager
def _clean_environment() -> Iterator[None]:
    """sbatch exports the submitting environment into jobs: keep LEAKY_ENV out of it."""
    saved = {name: os.environ.pop(name) for name in LEAKY_ENV if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _submit(jobs: list[FrozenJob], groups: list[align.AlignGroup], options: dict[str, Any], sweep_id: str,
            folder: Path) -> tuple[list[tuple], list[tuple]]:
    """The align jobs first, then the jobs, those of an align group depending on its align job;
    returns ([(job, submitit job)], [(align signature, submitit job)])."""
    needed = [g for g in groups if g.skipped is None]
    with _tracking_secret(jobs):  # the pickled jobs hold the URI redacted; the real one rides in the environment
        aligns = _submit_arrays([(g, g.members[0].resources, AlignJob(redact_tree(g.config), g.signature), None)
                                 for g in needed], options, folder)
        for g, handle in aligns:
            g.job_id = str(handle.job_id)
        dependency = {member.num: g.dependency for g in groups for member in g.members}
        submitted = _submit_arrays([(job, job.resources, SweepJob(redact_tree(job.config), job.signature, sweep_id),
                                     dependency.get(job.num)) for job in jobs], options, folder)
    return submitted, [(g.signature, handle) for g, handle in aligns]


@contextlib.contextmanager
def _tracking_secret(jobs: list[FrozenJob]) -> Iterator[None]:
    """While submitting: the jobs' real tracking URI in `VLM_SWEEPS_TRACKING_URI` of the submitting
    environment (sbatch exports it into the jobs; launchers/entry.py restores it), when it holds
    credentials that the frozen configs do not."""
    secret = {j.config["tracking"]["uri"] for j in jobs if redact_uri(j.config["tracking"]["uri"]) != j.config["tracking"]["uri"]}
    if len(secret) > 1:
        raise ValueError("the jobs of one sweep track into several stores with credentials; submit one sweep per store")
    saved = os.environ.get(URI_ENV)
    if secret:
        os.environ[URI_ENV] = secret.pop()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(URI_ENV, None)
        else:
            os.environ[URI_ENV] = saved


def _submit_arrays(units: list[tuple[Any, dict, Any, str | None]], options: dict[str, Any],
                   folder: Path) -> list[tuple]:
    """Units (key, resources, callable, dependency) as one array per resource class and dependency,
    cut at the array limit; [(key, submitit job)]."""
    import submitit

    if not units:
        return []
    groups: dict[tuple, list[tuple]] = {}
    for unit in units:
        groups.setdefault((resources.class_key(unit[1]), unit[3]), []).append(unit)
    limit = options["max_array_size"] or cluster.max_array_size()
    kwargs = {"slurm_max_num_timeout": options["max_num_timeout"]}
    if options["python"]:
        kwargs["slurm_python"] = options["python"]
    submitted = []
    with _clean_environment():
        for (_, dependency), members in groups.items():
            # an executor per class: parameters accumulate in one, and a CPU class must not inherit GPUs
            executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm", **kwargs)
            executor.update_parameters(**align.dependent_parameters(
                resources.executor_parameters(options, members[0][1]), dependency))
            for chunk in resources.chunks(members, limit):
                with executor.batch():
                    handles = [executor.submit(task) for _, _, task, _ in chunk]
                submitted += [(key, handle) for (key, _, _, _), handle in zip(chunk, handles)]
    return submitted


def _summary(entry: manifest.JobEntry) -> dict[str, Any]:
    return {"signature": entry.signature, "slurm_job_id": entry.job_id, "skipped": entry.skipped,
            "run_id": entry.run_id}


def _job_return(job: FrozenJob, config: DictConfig, status: JobStatus, value: Any) -> JobReturn:
    ret = JobReturn(overrides=job.overrides, cfg=job.view, hydra_cfg=config,
                    working_dir=str(job.job_dir), task_name=str(config.hydra.job.name), status=status)
    ret.return_value = value
    return ret


def _report(record: manifest.Manifest, submitted: list[tuple], align_submitted: list[tuple],
            seconds: dict[str, float], code: snapshot.Snapshot | None = None) -> None:
    """What the user sees on the terminal: how many jobs went where, and what was skipped."""
    jobs = record.jobs
    arrays: dict[str, list[str]] = {}
    for job, handle in submitted:
        arrays.setdefault(str(handle.job_id).split("_")[0], []).append(job.resource_class)
    by_num = {entry.num: entry for entry in jobs}
    after = {str(h.job_id).split("_")[0]: by_num[j.num].depends_on for j, h in submitted}
    skipped = {reason: [j for j in jobs if j.skipped == reason] for reason in ("finished", "active", "duplicate")}
    print(f"sweep {record.sweep_id}: submitted {len(submitted)} of {len(jobs)} jobs to SLURM "
          f"in {seconds['total']:.2f} s (freeze {seconds['freeze']:.2f} s, lookup {seconds['lookup']:.2f} s, "
          f"code snapshot {seconds['snapshot']:.2f} s, submit {seconds['submit']:.2f} s)")
    if code is not None:
        print(f"  code:     {code.describe()}")
    if align_submitted:
        ids = ", ".join(str(h.job_id) for _, h in align_submitted)
        n = len(align_submitted)
        print(f"  {n} align job{'s' if n > 1 else ''} ({ids}): each trains the align stage its jobs share, once")
    for array_id, classes in arrays.items():
        wait = f", after align job {after[array_id]} (afterok)" if after.get(array_id) else ""
        print(f"  array {array_id}: {len(classes)} jobs, resource class {classes[0]}{wait}")
    reused = [a for a in record.aligns if a.skipped == "exists"]
    if reused:
        print(f"  {len(reused)} align stage{'s' if len(reused) > 1 else ''} already trained (loaded by their jobs): "
              + ", ".join(a.align_signature for a in reused))
    evaluating = [j for j in jobs if j.evaluate_only and not j.skipped]
    if evaluating:
        print(f"  {len(evaluating)} already trained: evaluation only, nothing trains ("
              + "; ".join(f"{j.signature}: {', '.join(j.evaluate_only)}" for j in evaluating) + ")")
    if skipped["finished"]:
        print(f"  {len(skipped['finished'])} already finished (skipped): "
              + ", ".join(j.signature for j in skipped["finished"]))
    if skipped["active"]:
        print(f"  {len(skipped['active'])} already queued or running (skipped): "
              + ", ".join(f"{j.signature} ({j.job_id})" for j in skipped["active"]))
    if skipped["duplicate"]:
        print(f"  {len(skipped['duplicate'])} duplicates of another job of this sweep (skipped)")
    print(f"  tracking: {redact_uri(record.tracking_uri)} (experiment {record.experiment})")
    print(f"  status:   python -m launchers status --root {record.root} --sweep {record.sweep_id}")


def _wait(jobs: list[FrozenJob], entries: dict[int, manifest.JobEntry], submitted: list[tuple],
          config: DictConfig, align_handles: dict[str, Any] | None = None, poll_s: float = 5.0) -> list[JobReturn]:
    """Block until every submitted job has ended for good (requeued attempts are not an end); a
    job whose align job failed ends too (SLURM cancels it: --kill-on-invalid-dep)."""
    handles = {job.num: handle for job, handle in submitted}
    aligns = {str(h.job_id): h for h in (align_handles or {}).values()}
    ids = [str(h.job_id) for h in handles.values()] + list(aligns)
    states: dict[str, cluster.SlurmState] = {}
    while ids:
        states = cluster.job_states(ids)
        if all(i in states and states[i].terminal for i in ids):
            break
        time.sleep(poll_s)
    failed = {num for num, handle in handles.items() if states[str(handle.job_id)].state != "COMPLETED"}
    errors = {}  # what the failed jobs' runs say went wrong
    for uri, experiment in {(j.config["tracking"]["uri"], j.config["tracking"]["experiment"])
                            for j in jobs if j.num in failed}:
        runs = store.job_runs(uri, experiment)
        errors.update({sig: run.data.tags.get(naming.TAG_ERROR) for sig, run in runs.items()})
    returns = []
    for job in jobs:
        entry, handle = entries[job.num], handles.get(job.num)
        if handle is None:  # skipped at submit
            returns.append(_job_return(job, config, JobStatus.COMPLETED, _summary(entry)))
        elif job.num not in failed:
            returns.append(_job_return(job, config, JobStatus.COMPLETED, handle.result()))
        else:
            state = states[str(handle.job_id)]
            align_state = states.get(entry.depends_on or "")
            if align_state is not None and align_state.state != "COMPLETED":
                log_file = aligns[entry.depends_on].paths.stderr if entry.depends_on in aligns else "its submitit folder"
                errors[entry.signature] = (f"its align job {entry.depends_on} ended {align_state.state}; "
                                           f"align log: {log_file}")
            error = RuntimeError(f"job {handle.job_id} ({entry.signature}, {' '.join(entry.overrides)}) ended "
                                 f"{state.state} (exit {state.exit_code}): "
                                 f"{errors.get(entry.signature) or 'no error recorded'}; log: {handle.paths.stderr}")
            returns.append(_job_return(job, config, JobStatus.FAILED, error))
    return returns
