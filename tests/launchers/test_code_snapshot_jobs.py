"""Editing the code while a sweep runs changes none of its jobs (launchers/snapshot.py), through the
real CLI and the local launcher: two jobs one after the other, the repository edited and committed
while the first runs; the second still runs the code of the launch, and each job's process says
(vlm_sweeps.code_version.describe) the commit and the dirty diff the sweep was launched with.
The same on the SLURM test cluster: tests/cluster/test_slurm_launcher.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SMALL, seed_job_store
from tests.launchers import code_probe

pytestmark = pytest.mark.integration  # starts processes of ours: the CLI and its jobs


@dataclass
class EditedSweep:
    repo: Path
    commit: str  # at launch
    new_commit: str  # made while the sweep ran
    snapshot: Path
    probes: Path
    out: str


@pytest.fixture(scope="module")
def edited_sweep(tmp_path_factory) -> EditedSweep:
    tmp_path = tmp_path_factory.mktemp("edited_sweep")
    repo, commit = code_probe.work_repo(tmp_path / "repo")
    probes = tmp_path / "probes"
    # launched from the repository itself: without the snapshot, a job would import the edited code
    args = ["seed=0,1", *SMALL, "run.threads=1", "hydra/launcher=local", "hydra.launcher.parallel=1"]
    seed_job_store(args, repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VLM_SWEEPS_"))}
    env.update({"PYTHONPATH": str(repo), code_probe.ENV: str(probes)})
    proc = subprocess.Popen([sys.executable, "-m", "vlm_sweeps.run", "-m", *args], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not code_probe.job_records(probes):  # the first job has started (imported its code)
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-5000:]
            time.sleep(0.2)
        new_commit = code_probe.edit_and_commit(repo)
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]
    assert "2 of 2 jobs ended well" in out, out[-5000:]
    (snapshot_dir,) = (repo / ".vlm_sweeps" / "hydra").glob("multirun_*/.code/*")  # in the sweep folder
    return EditedSweep(repo, commit, new_commit, snapshot_dir, probes, out)


def test_a_local_sweep_runs_the_code_it_was_launched_with(edited_sweep):
    jobs = code_probe.job_records(edited_sweep.probes)
    assert len(jobs) == 2 and edited_sweep.new_commit != edited_sweep.commit
    assert f"code: {edited_sweep.snapshot}" in edited_sweep.out
    for job in jobs:  # the second started after the edit
        assert job["version"] == code_probe.SUBMITTED  # not the edit made while the sweep ran
        assert Path(job["file"]).is_relative_to(edited_sweep.snapshot)
    # every process the jobs started imports the snapshot too (the tracking process among them)
    assert all(r["version"] == code_probe.SUBMITTED for r in code_probe.records(edited_sweep.probes)
               if Path(r["file"]).is_relative_to(edited_sweep.snapshot))


def test_each_job_describes_the_commit_and_dirty_diff_it_was_launched_with(edited_sweep):
    """What `vlm_sweeps.code_version.describe()` says in the jobs' processes (what tracking records)."""
    sweep = edited_sweep
    code_probe.assert_describes_the_launch(code_probe.job_records(sweep.probes), sweep.snapshot, sweep.commit)


def test_the_runs_record_the_commit_and_diff_of_the_launch(edited_sweep):
    uri = f"sqlite:///{edited_sweep.repo / 'mlflow.db'}"
    code_probe.assert_runs_record_the_launch(uri, 2, edited_sweep.commit)
