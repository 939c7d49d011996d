"""Nothing wrong is ever recorded as done: a diverged run fails with its last finite checkpoint
kept; one process trains a signature at a time; SIGTERM leaves a resumable run, SIGKILL a run
that readers see is dead; an unreadable checkpoint or a killed write never blocks a job.
Each case runs the real CLI in a subprocess against a private sqlite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, SMALL
from tests.integration.conftest import job_runs, popen, run_cli, wait_for_training
from vlm_sweeps import liveness, naming

pytestmark = pytest.mark.integration


def store(tmp_path: Path) -> tuple[str, list[str]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, [f"tracking.uri={uri}", f"paths.root={tmp_path / 'root'}"]


def test_a_diverged_run_fails_and_keeps_its_last_finite_checkpoint(tmp_path):
    uri, where = store(tmp_path)
    out = run_cli(["-m", "vlm_sweeps.run", *SMALL, *where, "scale.finetune.lr=1e10", "run.checkpoint_every=1",
                   "run.log_every=1"], tmp_path)
    assert out.returncode == 1, out.stderr[-3000:]
    assert "error: training diverged" in out.stderr and "Traceback" not in out.stderr
    (run,) = job_runs(uri)
    assert run.info.status == "FAILED"
    error = run.data.tags[naming.TAG_ERROR]
    assert "non-finite" in error and "at step" in error and "scale.finetune.lr" in error
    assert not any("/" in k and not k.startswith(("train/", "time/")) for k in run.data.metrics)  # no scores
    checkpoint = tmp_path / "root" / "runs" / run.data.tags[naming.TAG_SIGNATURE] / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)  # the last one before the divergence
    assert state["model"] and all(torch.isfinite(t).all() for t in state["model"].values())


def test_two_identical_commands_train_once(tmp_path):
    """On a fresh store: one creates the schema and trains, the other waits for it and skips."""
    uri, where = store(tmp_path)
    args = [*SMALL, *where]
    procs = [popen(args, tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    (run,) = job_runs(uri)  # one run for the signature
    assert run.info.status == "FINISHED"
    said = [o[0] for o in outs]
    assert sum("skipped (already finished)" in s for s in said) == 1, said
    assert any("is held by pid" in o[0] + o[1] for o in outs)  # the waiting one said whom it waited for


def test_sigterm_interrupts_resumably_and_sigkill_is_seen_as_dead(tmp_path):
    uri, where = store(tmp_path)
    # enough steps that the resumed job is still training when it is killed, also when the store shows
    # its steps late (the tracking process writes them asynchronously) on a loaded machine
    args = [*SMALL, *where, "data.synthetic.n_finetune=1000", "run.checkpoint_every=2", "run.log_every=1",
            "tracking.heartbeat_s=1"]
    proc = popen(args, tmp_path)
    run_id = wait_for_training(uri, proc, tmp_path / "root" / "runs")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    # one line, no traceback: the run, the step it resumes from, the command that resumes it
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: run {run_id} is resumable from its checkpoint at step "), last
    assert "; resume: cd " in last and "&& python -m vlm_sweeps.run " in last and "run.checkpoint_every=2" in last
    assert "Traceback" not in err
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags[naming.TAG_STATUS] == "interrupted"
    assert liveness.state_of(run.info.status, run.data.tags) == "interrupted"

    proc = popen(args, tmp_path)  # resumes the same run, then is killed without a chance to say so
    wait_for_training(uri, proc, tmp_path / "root" / "runs")
    time.sleep(2)
    proc.kill()
    proc.communicate(timeout=60)
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "RUNNING"
    assert liveness.state_of(run.info.status, run.data.tags) == "dead"
    status = subprocess.run([sys.executable, "-m", "launchers", "status", "--tracking-uri", uri], cwd=tmp_path,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert status.returncode == 0, status.stderr
    assert "dead" in status.stdout and "python -m vlm_sweeps.run" in status.stdout

    out = run_cli(["-m", "vlm_sweeps.run", *args], tmp_path)  # the command it shows: resumes and finishes
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = job_runs(uri)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"


def test_an_unreadable_checkpoint_is_set_aside_and_stale_temp_files_removed(tmp_path):
    uri, where = store(tmp_path)
    args = [*SMALL, *where, "run.checkpoint_every=2"]
    out = run_cli(["-m", "vlm_sweeps.run", *args, "run.fail_at_step=4"], tmp_path)
    assert out.returncode != 0
    (run,) = job_runs(uri)
    folder = tmp_path / "root" / "runs" / run.data.tags[naming.TAG_SIGNATURE]
    checkpoint = folder / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = __import__("vlm_sweeps.atomic", fromlist=["_writer"])._writer().rsplit("-", 1)[0]
    orphan = folder / f".checkpoint.pt.{host}-{dead.pid}.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")

    out = run_cli(["-m", "vlm_sweeps.run", *args], tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    aside = list(folder.glob("checkpoint.pt.unreadable-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == 1000  # kept, not deleted
    said = out.stdout + out.stderr
    assert str(checkpoint) in said and str(aside[0]) in said  # the message names both
    assert not orphan.exists()
    assert job_runs(uri)[0].info.status == "FINISHED"


def test_data_errors_open_no_run(tmp_path):
    uri, where = store(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ft.json").write_text("[]")
    out = run_cli(["-m", "vlm_sweeps.run", *SMALL, *where, "data=llava_v15", "data.finetune_file=ft.json",
                   f"paths.data_root={tmp_path / 'data'}"], tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "ft.json" in out.stderr and "Traceback" not in out.stderr
    assert job_runs(uri) == []
