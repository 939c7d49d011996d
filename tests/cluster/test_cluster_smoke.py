"""Smoke tests of the local SLURM cluster: real job states through sbatch, sacct and submitit."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

SCRIPT = Path(__file__).resolve().parents[2] / "launchers" / "local_slurm.sh"


def test_node_idle_and_exports(slurm_cluster):
    assert slurm_cluster.env["SLURM_CONF"] == str(slurm_cluster.dir / "slurm.conf")
    out = slurm_cluster.run("sinfo", "-h", "-o", "%P %a %T %c").stdout.split()
    assert out[0] == "debug*" and out[1] == "up" and out[2] in {"idle", "mixed", "allocated"}
    assert int(out[3]) >= 2
    # slurmdbd.conf carries the database password: owner-only
    assert (slurm_cluster.dir / "slurmdbd.conf").stat().st_mode & 0o077 == 0


def test_up_again_is_a_no_op(slurm_cluster):
    proc = subprocess.run(
        ["bash", str(SCRIPT), "up", str(slurm_cluster.dir)], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, check=True,
    )
    exports = dict(shlex.split(line)[1].split("=", 1) for line in proc.stdout.splitlines() if line)
    assert exports == slurm_cluster.env
    assert "already up" in proc.stderr


def test_exit_codes_reach_sacct(slurm_cluster, tmp_path):
    ok = slurm_cluster.sbatch("-o", str(tmp_path / "ok.out"), "--wrap", "echo hello")
    bad = slurm_cluster.sbatch("-o", str(tmp_path / "bad.out"), "--wrap", "exit 3")
    slurm_cluster.wait(ok)
    slurm_cluster.wait(bad)

    def state(job_id):
        return slurm_cluster.run("sacct", "-j", job_id, "-X", "-n", "-o", "State").stdout.strip()

    assert state(ok) == "COMPLETED"
    assert state(bad) == "FAILED"
    exit_code = slurm_cluster.run("sacct", "-j", bad, "-X", "-n", "-P", "-o", "ExitCode").stdout.strip()
    assert exit_code == "3:0"
    assert (tmp_path / "ok.out").read_text().strip() == "hello"


def test_job_array_completes(slurm_cluster, tmp_path):
    job = slurm_cluster.sbatch(
        "--array=0-2", "-o", str(tmp_path / "task_%a.out"), "--wrap", "echo task $SLURM_ARRAY_TASK_ID",
    )
    states = slurm_cluster.wait(job, n_tasks=3)
    assert states == {f"{job}_{i}": "COMPLETED" for i in range(3)}
    for i in range(3):
        assert (tmp_path / f"task_{i}.out").read_text().strip() == f"task {i}"


def test_submitit_sees_real_states(slurm_cluster, tmp_path):
    submitit = pytest.importorskip("submitit")

    def work(x):  # a local function: cloudpickle ships it by value
        import os

        return x * 2, os.environ["SLURM_JOB_ID"]

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=5, slurm_partition="debug", cpus_per_task=1)
    job = executor.submit(work, 21)
    assert job.result() == (42, str(job.job_id))

    deadline = time.monotonic() + 60
    while job.state != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(1)
    assert job.state == "COMPLETED"
    assert job.get_info(mode="force")["State"] == "COMPLETED"
