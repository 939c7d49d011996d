"""What a job records is true: no credential reaches the store, a run whose set-up failed is
FAILED (not RUNNING), any first job may create a fresh sqlite store, a checkpoint is never
written with a non-finite weight and an unreadable one is set aside, killed writes are cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from vlm_sweeps import atomic, naming
from vlm_sweeps.tracking import JobTracker
from vlm_sweeps.train import Diverged
from vlm_sweeps.train.checkpoint import Checkpointer

AXES = {"encoder": "clip", "resize": "naive", "optimization": "single_stage", "llm": "llama2", "epochs": "1.0",
        "data": "synthetic", "scale": "tiny", "seed": "7"}


def test_credentials_of_a_tracking_uri_never_reach_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = JobTracker(uri, "e")
    resolved = {"tracking": {"uri": "http://alice:SECRET@host:5000", "experiment": "e"},
                "paths": {"data_root": "postgresql://bob:pw123@db:5432/x"}, "seed": 7}
    run_id = tracker.start("sig", resolved, AXES, None, "name")
    run = MlflowClient(uri).get_run(run_id)
    text = str(run.data.params) + str(run.data.tags)
    artifact = Path(MlflowClient(uri).download_artifacts(run_id, "config.yaml", str(tmp_path)))
    text += artifact.read_text()
    assert "SECRET" not in text and "pw123" not in text and "alice" not in text
    assert "host:5000" in run.data.params["tracking.uri"]  # where it tracked is still told


def test_a_run_whose_start_fails_is_failed_not_running(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = JobTracker(uri, "e")

    def broken(*args, **kwargs):
        raise OSError("artifact store unreachable")

    monkeypatch.setattr(tracker, "log_text", broken)
    with pytest.raises(OSError):
        tracker.start("sig", {"seed": 7}, AXES, None, "name")
    (run,) = MlflowClient(uri).search_runs([tracker.experiment_id])
    assert run.info.status == "FAILED"
    assert "artifact store unreachable" in run.data.tags[naming.TAG_ERROR]


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_any_first_job_may_create_a_fresh_sqlite_store(tmp_path):
    """Three processes open one fresh store at once (before: `duplicate column name: step`)."""
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = "import sys; from vlm_sweeps.tracking import JobTracker; print(JobTracker(sys.argv[1], 'e').experiment_id)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-1500:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # one experiment


def test_a_checkpoint_is_never_written_with_non_finite_weights(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1)
    good = {"run_id": "r", "stage_index": 0, "stage_step": 1, "stage_steps": [1],
            "model": {"projector.w": torch.ones(3)}}
    ckpt.save(good)
    bad = {**good, "stage_step": 2, "model": {"projector.w": torch.tensor([1.0, float("nan"), 2.0])}}
    with pytest.raises(Diverged, match="non-finite weights after step 2"):
        ckpt.save(bad)
    assert ckpt.load()["stage_step"] == 1  # the last finite one


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"not a checkpoint at all"])
def test_an_unreadable_checkpoint_is_moved_aside(tmp_path, content, caplog):
    ckpt = Checkpointer(tmp_path, every=1)
    ckpt.path.write_bytes(content)
    assert ckpt.load() is None
    (aside,) = tmp_path.glob("checkpoint.pt.unreadable-*")
    assert aside.read_bytes() == content and not ckpt.path.exists()
    assert str(ckpt.path) in caplog.text and str(aside) in caplog.text


def test_a_foreign_file_is_moved_aside(tmp_path):
    ckpt = Checkpointer(tmp_path, every=1)
    torch.save({"weights": torch.ones(2)}, ckpt.path)  # readable, but no job checkpoint
    assert ckpt.load() is None
    assert list(tmp_path.glob("checkpoint.pt.unreadable-*"))


def test_temp_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    host = atomic._writer().rsplit("-", 1)[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = tmp_path / f".checkpoint.pt.{host}-{dead.pid}.k3j2h1.tmp"
    live = tmp_path / f".checkpoint.pt.{host}-{os.getppid()}.a1b2c3.tmp"
    other_host_old = tmp_path / ".align.pt.otherhost-12.zz9.tmp"
    other_host_new = tmp_path / ".align.pt.otherhost-13.zz8.tmp"
    for path in (orphan, live, other_host_old, other_host_new):
        path.write_bytes(b"x")
    os.utime(other_host_old, (0, 0))
    assert sorted(atomic.remove_stale(tmp_path)) == sorted([orphan, other_host_old])
    assert live.exists() and other_host_new.exists()
    # and a write of our own leaves no temp file
    atomic.atomic_write(tmp_path / "a.bin", lambda f: f.write(b"abc"))
    assert (tmp_path / "a.bin").read_bytes() == b"abc"
    assert sorted(p.name for p in tmp_path.glob(".a.bin.*")) == []
