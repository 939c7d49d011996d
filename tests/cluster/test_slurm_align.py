"""Shared align stage on the real test cluster: a sweep `optimization=two_stage epochs=1,2` submits
ONE align job and two jobs that wait for it (`afterok`); the align is trained once, both runs load
it and finish. When the align job fails, its jobs are cancelled, not left pending forever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from launchers import manifest
from launchers.cluster import job_states
from tests.cluster.conftest import TERMINAL_STATES
from tests.cluster.test_slurm_launcher import COMMON, cache_args, job_runs, latest, status, submit  # noqa: F401

pytestmark = pytest.mark.cluster

SWEEP = ["optimization=two_stage", "epochs=1,2"]


def wait_for(cluster, job_ids: list[str], timeout: float) -> dict[str, str]:
    """sacct states of these jobs (array tasks as `<id>_<n>`) once all are terminal."""
    deadline = time.monotonic() + timeout
    while True:
        states = {j: s.state for j, s in job_states(job_ids).items() if j in job_ids}
        if len(states) == len(job_ids) and all(s in TERMINAL_STATES for s in states.values()):
            return states
        assert time.monotonic() < deadline, f"not finished after {timeout}s: {states}\n" + \
            cluster.run("squeue", "-a", check=False).stdout
        time.sleep(0.5)


def sacct_times(cluster, job_ids: list[str]) -> dict[str, tuple[str, str]]:
    mains = sorted({j.split("_")[0] for j in job_ids})
    out = cluster.run("sacct", "-X", "-n", "-P", "-o", "JobID,Start,End", "-j", ",".join(mains)).stdout
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    return {job: (start, end) for job, start, end in rows}


def test_one_align_job_then_two_jobs_after_it(slurm_cluster, cache_args, tmp_path):  # noqa: F811
    out, _ = submit([*SWEEP, *COMMON, *cache_args], tmp_path)
    record = latest(tmp_path)
    members = [e.job_id for e in record.jobs]
    # the two jobs wait for the align job while it runs (it takes several seconds to start)
    pending = {j: slurm_cluster.run("scontrol", "show", "job", "-o", j).stdout for j in members}
    assert "submitted 2 of 2 jobs" in out.stdout and "1 align job (" in out.stdout, out.stdout
    (entry,) = record.aligns
    assert entry.skipped is None and entry.job_id and sorted(entry.members) == [0, 1]
    assert all(e.depends_on == entry.job_id and e.align_signature == entry.align_signature for e in record.jobs)
    for job_id, text in pending.items():
        assert f"Dependency=afterok:{entry.job_id}" in text, text  # "(unfulfilled)" while the align runs

    states = wait_for(slurm_cluster, [entry.job_id, *members], timeout=420)
    assert set(states.values()) == {"COMPLETED"}, states
    times = sacct_times(slurm_cluster, [entry.job_id, *members])
    align_end = times[entry.job_id][1]
    assert all(times[j][0] >= align_end for j in members), times  # ISO timestamps compare as text

    runs = job_runs(record.tracking_uri)
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.params["epochs"] for r in runs} == {"1.0", "2.0"}
    assert {r.data.tags["vlm_sweeps.align_source"] for r in runs} == {"reused"}  # trained once, by the align job
    assert {r.data.tags["vlm_sweeps.align_signature"] for r in runs} == {entry.align_signature}
    assert Path(entry.path).is_file()
    client = MlflowClient(record.tracking_uri)
    for run in runs:  # the align's curve is in each run (steps 1-2 here), then its own finetune
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert min(steps) <= 2 < max(steps)

    report = status(tmp_path)
    align_line = next(line for line in report.splitlines() if line.strip().startswith(entry.align_signature))
    assert " finished " in align_line and "COMPLETED" in align_line, report
    assert "2 finished" in report

    # a later sweep needing the same align: no align job, no dependency, it loads the align
    again, _ = submit(["optimization=two_stage", "epochs=3", *COMMON, *cache_args], tmp_path)
    later = latest(tmp_path)
    assert "align job" not in again.stdout and "1 align stage already trained" in again.stdout, again.stdout
    (job,) = later.jobs
    assert later.aligns[0].skipped == "exists" and job.depends_on is None
    assert "Dependency=(null)" in slurm_cluster.run("scontrol", "show", "job", "-o", job.job_id).stdout
    assert wait_for(slurm_cluster, [job.job_id], timeout=300) == {job.job_id: "COMPLETED"}
    (run,) = [r for r in job_runs(record.tracking_uri) if r.data.params["epochs"] == "3.0"]
    assert run.info.status == "FINISHED" and run.data.tags["vlm_sweeps.align_source"] == "reused"


def test_a_failed_align_job_cancels_its_jobs(slurm_cluster, cache_args, tmp_path):  # noqa: F811
    submit([*SWEEP, "run.fail_at_step=1", *COMMON, *cache_args], tmp_path)
    record = latest(tmp_path)
    (entry,) = record.aligns
    members = [e.job_id for e in record.jobs]
    states = wait_for(slurm_cluster, [entry.job_id, *members], timeout=240)
    assert states[entry.job_id] == "FAILED"
    assert {states[j] for j in members} == {"CANCELLED"}, states  # not PENDING on a dependency never satisfied
    assert job_runs(record.tracking_uri) == []  # they never started
    assert not Path(entry.path).exists()
    report = status(tmp_path)
    align_line = next(line for line in report.splitlines() if line.strip().startswith(entry.align_signature))
    assert " failed " in align_line, report
    assert f"cancelled: its align job {entry.job_id} ended FAILED" in report, report
    assert isinstance(manifest.find(tmp_path / ".vlm_sweeps", None), manifest.Manifest)
