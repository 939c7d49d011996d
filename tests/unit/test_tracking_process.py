"""The job's tracking process (vlm_sweeps/tracking_process.py), against a real MLflow sqlite store:
writes that do not wait are still all in the store, in order, when the job finishes; a write that
failed makes the run FAILED instead of FINISHED; a Ctrl-C or preemption signal does not take the
tracking away from the job; a tracking process that died is an error that says so, and the next
job gets a new one; each tracker sees the job's environment of when it was opened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from mlflow.tracking import MlflowClient

from vlm_sweeps import naming
from vlm_sweeps.tracking_process import RemoteTracker, TrackingError, TrackingProcess

# every test runs a tracking process (a process of ours importing MLflow): integration tier
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def process():
    """One tracking process for the module's jobs, as a local sweep has (started once: seconds)."""
    proc = TrackingProcess()
    yield proc
    proc.close()


@pytest.fixture()
def own_process():
    proc = TrackingProcess()
    yield proc
    proc.close()


@pytest.fixture()
def uri(tmp_path, clean_env):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def start(process, uri, signature="sig1"):
    tracker = RemoteTracker(uri, "tp", process)
    tracker.start(signature, {"seed": 7}, {"encoder": "clip"}, None, "a run")
    return tracker


def test_writes_that_do_not_wait_are_all_in_the_store_when_the_run_finishes(process, uri):
    tracker = start(process, uri)
    for step in range(1, 51):
        tracker.log_curve({naming.TRAIN_LOSS: 1.0 / step}, step)
    tracker.set_tag(naming.TAG_TOTAL_STEPS, "50")
    tracker.log_records([{"q": "a?", "answer": "b"}], "predictions/x.jsonl")
    tracker.finish()
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[naming.TAG_TOTAL_STEPS] == "50"
    curve = sorted((m.step, m.value) for m in client.get_metric_history(tracker.run_id, naming.TRAIN_LOSS))
    assert curve == [(step, pytest.approx(1.0 / step)) for step in range(1, 51)]
    assert [a.path for a in client.list_artifacts(tracker.run_id, "predictions")] == ["predictions/x.jsonl"]
    assert tracker.finished_run("sig1") == (tracker.run_id, {naming.TRAIN_LOSS: pytest.approx(1 / 50)})


def test_a_lost_write_fails_the_run_instead_of_finishing_it(process, uri):
    tracker = start(process, uri)
    tracker.set_tag("bad key!", "x")  # refused by MLflow, in the tracking process, while the job goes on
    with pytest.raises(TrackingError, match=r"a write to the tracking store failed: set_tag: .*Invalid value"):
        tracker.finish()
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED" and "bad key!" in run.data.tags[naming.TAG_ERROR]
    # reported once: the next job of this process tracks normally
    other = start(process, uri, "sig2")
    other.finish()
    assert MlflowClient(uri).get_run(other.run_id).info.status == "FINISHED"


def test_signals_meant_for_the_job_leave_its_tracking_alone(own_process, uri):
    process = own_process
    tracker = start(process, uri)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):  # Ctrl-C, scancel, submitit's preemption
        os.kill(process._proc.pid, sig)
    tracker.interrupted()  # what the job does after such a signal: its run waits for the resume
    run = MlflowClient(uri).get_run(tracker.run_id)
    assert run.info.status == "RUNNING" and run.data.tags[naming.TAG_STATUS] == "interrupted"


def test_a_dead_tracking_process_is_an_error_and_the_next_job_gets_another(own_process, uri):
    process = own_process
    tracker = start(process, uri)
    process._proc.kill()
    process._proc.wait()
    with pytest.raises(TrackingError, match=r"tracking process \(vlm_sweeps.tracking_process\) that opened this run exited with code -9"):
        tracker.unfinished("sig1")
    again = start(process, uri, "sig2")
    again.finish()
    assert MlflowClient(uri).get_run(again.run_id).info.status == "FINISHED"


def test_each_tracker_sees_the_environment_of_its_job(process, uri, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    on_slurm = start(process, uri, "sig1")
    monkeypatch.delenv("SLURM_JOB_ID")
    local = start(process, uri, "sig2")  # the same tracking process, opened for the next job
    client = MlflowClient(uri)
    assert client.get_run(on_slurm.run_id).data.tags[naming.TAG_SLURM_JOB_ID] == "4242"
    assert naming.TAG_SLURM_JOB_ID not in client.get_run(local.run_id).data.tags


def test_writes_still_in_the_pipe_reach_the_store_when_the_job_exits(uri, tmp_path):
    script = textwrap.dedent(f"""
        from vlm_sweeps.tracking_process import RemoteTracker
        tracker = RemoteTracker({uri!r}, "tp")
        tracker.start("sig1", {{}}, {{}}, None, "r")
        for step in range(1, 201):
            tracker.log_curve({{"train/loss": float(step)}}, step)
        print(tracker.run_id)
    """)  # exits right after its last write, without waiting for any
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    history = MlflowClient(uri).get_metric_history(out.stdout.strip(), naming.TRAIN_LOSS)
    assert sorted(m.step for m in history) == list(range(1, 201))


def test_after_a_lost_write_the_job_is_told_at_once_and_the_queued_writes_are_not_attempted(process, uri):
    tracker = start(process, uri)
    tracker.set_tag("bad key!", "x")  # lost: refused by the store
    for step in (1, 2, 3):  # sent before the job hears of it: dropped, not attempted one by one
        tracker.log_curve({naming.TRAIN_LOSS: 1.0}, step)
    deadline = time.monotonic() + 30
    with pytest.raises(TrackingError, match=r"a write to the tracking store failed: set_tag: .*Invalid value"):
        while time.monotonic() < deadline:  # the notice arrives while the job goes on; its next write raises
            tracker.log_curve({naming.TRAIN_LOSS: 1.0}, 4)
            time.sleep(0.05)
    # those sent before the notice arrived: 1-3 and the first tries at 4
    with pytest.raises(TrackingError, match=r"not attempted after it: log_curve x\d+ \(steps 1-4\); the run is marked FAILED"):
        tracker.finish()
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FAILED" and client.get_metric_history(tracker.run_id, naming.TRAIN_LOSS) == []
    other = start(process, uri, "sig2")  # the next job of this process is not affected
    other.log_curve({naming.TRAIN_LOSS: 1.0}, 1)
    other.finish()
    assert client.get_run(other.run_id).info.status == "FINISHED"


def test_a_reopened_run_gets_each_point_once_and_the_missing_ones(process, uri):
    tracker = start(process, uri)
    for step in (1, 2, 4):  # step 3 was lost
        tracker.log_curve({naming.TRAIN_LOSS: float(step)}, step)
    tracker.log_metrics({"synth_vqa/accuracy": 0.5}, 4)
    tracker.fail("TrackingError: a write to the tracking store failed")
    again = RemoteTracker(uri, "tp", process)
    again.reopen(tracker.run_id, None)
    for step in (1, 2, 3, 4):  # the curve replayed from the checkpoint, then the evaluation again
        again.log_curve({naming.TRAIN_LOSS: float(step)}, step)
    again.log_metrics({"synth_vqa/accuracy": 0.5, "time/job_s": 3.0}, 4)
    again.finish()
    client = MlflowClient(uri)
    assert sorted(m.step for m in client.get_metric_history(tracker.run_id, naming.TRAIN_LOSS)) == [1, 2, 3, 4]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "synth_vqa/accuracy")] == [4]
    assert [m.step for m in client.get_metric_history(tracker.run_id, "time/job_s")] == [4]
