"""`python -m launchers status`: one row per job of a submitted sweep, its state told by SLURM
(where the job is) and the tracking store (what it achieved), side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_sweeps import liveness, naming, tracking
from vlm_sweeps.redact import redact_uri, restore_uri

from launchers import cluster, store
from launchers.manifest import AlignEntry, JobEntry, Manifest

STATES = ("queued", "running", "requeued", "dead", "finished", "failed")
_PENDING = {"PENDING", "CONFIGURING", "SUSPENDED", "RESIZING"}


@dataclass
class Row:
    entry: JobEntry
    state: str
    slurm: str  # "<job id> <SLURM state>" or "-"
    progress: str
    metric: float | None
    error: str | None = None


def job_state(slurm: cluster.SlurmState | None, run_status: str | None) -> str:
    """queued | running | requeued | finished | failed, from SLURM's state of the latest attempt
    and the MLflow status of the job's run (None: no run yet, or not found)."""
    if slurm is None:  # not submitted (skipped) or unknown to sacct: the store alone decides
        return {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed", None: "queued"}.get(
            run_status, "running")
    if slurm.state in cluster.REQUEUED or (slurm.state in _PENDING and slurm.requeues):
        return "requeued"
    if slurm.state in _PENDING:
        return "queued"
    if slurm.state in ("RUNNING", "COMPLETING", "STAGE_OUT"):
        return "running"
    if slurm.state == "COMPLETED" and run_status == "FINISHED":
        return "finished"
    return "failed"  # FAILED, CANCELLED, TIMEOUT, OOM, NODE_FAIL..., or COMPLETED without a finished run


def varying_keys(entries: list[JobEntry]) -> list[str]:
    """Override keys whose value differs between the jobs of the sweep, in order of appearance."""
    values: dict[str, set[str]] = {}
    for entry in entries:
        for item in entry.overrides:
            key, _, value = item.partition("=")
            values.setdefault(key, set()).add(value)
    for entry in entries:  # a key some jobs lack varies too
        present = {item.partition("=")[0] for item in entry.overrides}
        for key in values:
            if key not in present:
                values[key].add("<default>")
    return [key for key, vals in values.items() if len(vals) > 1]


def _progress(client: Any, run: Any) -> str:
    """`done`, or the last optimizer step of the run's training curve (of the total when the run
    has a `vlm_sweeps.total_steps` tag)."""
    if run is None:
        return "-"
    if run.info.status == "FINISHED":
        return "done"
    history = client.get_metric_history(run.info.run_id, naming.TRAIN_LOSS)
    step = max((m.step for m in history), default=0)
    total = run.data.tags.get(naming.TAG_PREFIX + "total_steps")
    if total and int(total) > 0:
        return f"{step}/{total} ({100 * step / int(total):.0f}%)"
    return f"step {step}"


def default_metric(runs: dict[str, Any]) -> str:
    """The headline metric of the first benchmark the jobs' suite names (e.g. synth_vqa/accuracy)."""
    for run in runs.values():
        suite = run.data.params.get("benchmarks.suite")
        if suite:
            first = suite.strip("[]").split(",")[0].strip().strip("'\"")
            return naming.headline_metric(first)
    return naming.headline_metric("synth_vqa")


@dataclass
class AlignRow:
    entry: AlignEntry
    state: str  # queued | running | requeued | finished | failed, or "in a job" (no align job: INLINE)
    slurm: str


def align_rows(record: Manifest, slurm: dict[str, cluster.SlurmState]) -> list[AlignRow]:
    """The shared align stages of the sweep: SLURM tells where the align job is, its align.pt
    whether it succeeded."""
    out = []
    for entry in record.aligns:
        done = Path(entry.path).is_file()
        slurm_state = slurm.get(entry.job_id) if entry.job_id else None
        state = job_state(slurm_state, "FINISHED" if done else None)
        if entry.job_id is None and not done:
            state = "in a job"  # trained by the first of its jobs that runs
        label = f"{entry.job_id} {slurm_state.state}" if slurm_state else (entry.job_id or "-")
        if entry.skipped:
            label = f"{label} ({entry.skipped})" if entry.job_id else entry.skipped
        out.append(AlignRow(entry, state, label))
    return out


def rows(record: Manifest, metric: str | None = None) -> tuple[list[Row], str, list[AlignRow]]:
    from mlflow.tracking import MlflowClient

    uri = restore_uri(record.tracking_uri)  # recorded without credentials: they come from the environment
    runs = store.job_runs(uri, record.experiment)
    client = MlflowClient(tracking_uri=uri)
    slurm = cluster.job_states([e.job_id for e in record.jobs if e.job_id]
                               + [a.job_id for a in record.aligns if a.job_id])
    metric = metric or default_metric({e.signature: runs[e.signature] for e in record.jobs if e.signature in runs})
    out: list[Row] = []
    for entry in record.jobs:
        run = runs.get(entry.signature)
        slurm_state = slurm.get(entry.job_id) if entry.job_id else None
        state = job_state(slurm_state, run.info.status if run else None)
        label = f"{entry.job_id} {slurm_state.state}" if slurm_state else (entry.job_id or "-")
        if entry.skipped:
            label = f"{label} (skipped: {entry.skipped})" if entry.job_id else f"skipped: {entry.skipped}"
        elif entry.depends_on and state == "queued":
            label = f"{label} (after align {entry.depends_on})"
        value = run.data.metrics.get(metric) if run else None
        error = run.data.tags.get(naming.TAG_ERROR) if run and state == "failed" else None
        if state == "running" and run is not None and liveness.state_of(run.info.status, run.data.tags) == "dead":
            state, error = "dead", _dead_reason(run, slurm_state)  # SLURM may not have noticed (a hung node)
        align_state = slurm.get(entry.depends_on) if entry.depends_on else None
        if state == "failed" and error is None and align_state is not None and align_state.state != "COMPLETED":
            error = f"cancelled: its align job {entry.depends_on} ended {align_state.state}"
        out.append(Row(entry, state, label, _progress(client, run) if state != "queued" else "-", value, error))
    return out, metric, align_rows(record, slurm)


def age(seconds: float | None) -> str:
    """`12 s ago`, `5 min ago`, `3.1 h ago`, `2.0 d ago`; `-` for no heartbeat."""
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit} ago" if unit != "min" else f"{seconds / size:.0f} min ago"
    return f"{seconds:.0f} s ago"


def _where(tags: dict) -> str:
    host, pid = tags.get(naming.TAG_HOST), tags.get(naming.TAG_PID)
    return f"{host}:{pid}" if host else "-"


def _dead_reason(run: Any, slurm: cluster.SlurmState | None) -> str:
    tags = run.data.tags
    told = f"SLURM still says {slurm.state}" if slurm else "no SLURM state"
    return (f"run {run.info.run_id} has no live job: last heartbeat {age(liveness.heartbeat_age(tags))} "
            f"from {_where(tags)} ({told}); scancel it if it is listed, then submit the sweep again "
            "(finished jobs are skipped, this one resumes from its checkpoint)")


def render(record: Manifest, table: list[Row], metric: str, aligns: list[AlignRow] = ()) -> str:
    keys = varying_keys(record.jobs)
    header = ["signature", *keys, "state", "slurm", "progress", metric]
    lines = [header]
    for row in table:
        given = dict(item.partition("=")[::2] for item in row.entry.overrides)
        lines.append([row.entry.signature, *[given.get(k, "<default>") for k in keys], row.state, row.slurm,
                      row.progress, "-" if row.metric is None else f"{row.metric:.4f}"])
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    text = [f"sweep {record.sweep_id} ({len(table)} jobs, submitted {record.submitted_at[:19]}), "
            f"tracking {redact_uri(record.tracking_uri)}"]
    text += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    counts = {s: sum(r.state == s for r in table) for s in STATES}
    text.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    text += [f"{row.entry.signature} {row.state}: {row.error}" for row in table if row.error]
    if aligns:
        signatures = {entry.num: entry.signature for entry in record.jobs}
        lines = [["align", "state", "slurm", "shared by"]]
        for a in aligns:
            shared_by = [signatures.get(n, f"#{n}") for n in a.entry.members]
            more = f" +{len(shared_by) - 4} more" if len(shared_by) > 4 else ""
            lines.append([a.entry.align_signature, a.state, a.slurm, " ".join(shared_by[:4]) + more])
        widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
        text.append("shared align stages:")
        text += ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    return "\n".join(text)


# The tracking store's own view: local sweeps and single runs (no SLURM manifest), dead runs seen.


@dataclass
class StoreRow:
    signature: str
    axes: dict[str, str]
    state: str  # liveness.STATES
    progress: str
    heartbeat: str  # age of the last heartbeat ("12 s ago") or "-"
    where: str  # host:pid of the process that held the run
    metric: float | None
    run_id: str
    command: str | None
    error: str | None


def store_rows(uri: str, experiment: str, sweep: str | None = None,
               metric: str | None = None) -> tuple[list[StoreRow], str]:
    """One row per signature of the store's job runs (the newest run; a FINISHED one wins), of
    one sweep (`sweep`: its id) or all, oldest first. `uri` may be a redacted one (as printed):
    its credentials then come from the environment. Raises ValueError for a store it cannot
    reach that way, one that is not a store (tracking.probe), or an experiment the store does not
    have (naming the ones it has)."""
    uri = restore_uri(uri)
    try:
        tracking.probe(uri)
    except tracking.StoreUnusable as err:
        raise ValueError(str(err).replace("; nothing was trained or logged", "")) from None
    client = tracking.mlflow_client(uri)
    if client.get_experiment_by_name(experiment) is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(f"no experiment {experiment!r} in {redact_uri(uri)}; it has: {', '.join(names) or 'none'} "
                         "(give --experiment)")
    runs = store.job_runs(uri, experiment)
    if sweep is not None:
        runs = {sig: run for sig, run in runs.items() if run.data.tags.get(naming.TAG_SWEEP_ID) == sweep}
    metric = metric or default_metric(runs)
    out = []
    for signature, run in sorted(runs.items(), key=lambda item: item[1].info.start_time or 0):
        tags = run.data.tags
        out.append(StoreRow(signature, {k: run.data.params.get(k, "-") for k in naming.design_axes()},
                            liveness.state_of(run.info.status, tags), _progress(client, run),
                            age(liveness.heartbeat_age(tags)), _where(tags), run.data.metrics.get(metric),
                            run.info.run_id, liveness.resume_hint(tags), tags.get(naming.TAG_ERROR)))
    return out, metric


_WHY = {"dead": "dead (its process is gone and the run was left RUNNING: SIGKILL, OOM, a lost node)",
        "interrupted": "interrupted (resumable from its last checkpoint)", "failed": "failed"}


def render_store(uri: str, experiment: str, table: list[StoreRow], metric: str, sweep: str | None = None) -> str:
    """The store view: a table in the style of `render`, then per dead, interrupted or failed job
    its error and the command that resumes it."""
    axes = [k for k in naming.design_axes() if len({row.axes[k] for row in table}) > 1]
    header = ["signature", *axes, "state", "progress", "heartbeat", "host:pid", metric]
    lines = [header] + [[row.signature, *[row.axes[k] for k in axes], row.state, row.progress, row.heartbeat,
                         row.where, "-" if row.metric is None else f"{row.metric:.4f}"] for row in table]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    scope = f"sweep {sweep}: " if sweep else ""
    text = [f"{scope}{len(table)} jobs in {redact_uri(uri)} (experiment {experiment})"]
    if table:
        same = {k: table[0].axes[k] for k in naming.design_axes() if k not in axes}
        if same:
            text.append("every job: " + " ".join(f"{k}={v}" for k, v in same.items()))
    text += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    counts = {s: sum(r.state == s for r in table) for s in liveness.STATES}
    text.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no job runs")
    for row in table:
        if row.state not in _WHY:
            continue
        text.append(f"{row.signature} {_WHY[row.state]}" + (f": {row.error}" if row.error else ""))
        if row.command:
            text.append(f"  resume: {row.command}")
            if "***" in row.command:
                text.append("  (credentials redacted: put the real tracking URI back in, or export "
                            "MLFLOW_TRACKING_URI and drop tracking.uri=...)")
        else:
            text.append("  resume: run its job's command again (the same signature resumes the run)")
    return "\n".join(text)
