"""Torch threads from the job's share of the host's CPUs: jobs running at once on one host split
its CPUs; a killed job stops counting; cgroup quotas and SLURM's CPUs per task bound the share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from vlm_sweeps import cpu_share

HOLD = """
import sys, time
from vlm_sweeps import cpu_share
print(cpu_share.start(None), flush=True)
time.sleep(120)
"""


@pytest.fixture()
def registry(tmp_path, monkeypatch):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("VLM_SWEEPS_CPU_REGISTRY", str(tmp_path / "registry"))
    yield tmp_path / "registry"
    cpu_share.stop()
    cpu_share._SHARE.threads = cpu_share._SHARE.override = None
    torch.set_num_threads(threads)  # the rest of the session keeps its threads


def holder(env_registry) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "VLM_SWEEPS_CPU_REGISTRY": str(env_registry)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE, text=True)
    int(proc.stdout.readline())  # registered
    return proc


def test_jobs_on_one_host_share_its_cpus_and_a_killed_one_stops_counting(registry, monkeypatch):
    import torch

    monkeypatch.setattr(cpu_share, "cpus_available", lambda *a, **k: 4)
    other = holder(registry)
    try:
        assert cpu_share.start(None) == 2  # 4 CPUs, 2 jobs
        assert torch.get_num_threads() == 2
        assert cpu_share.live_jobs() == 2
        other.send_signal(signal.SIGKILL)
        other.wait()
        assert cpu_share.rebalance(force=True) == 4  # alone again: all of them
        assert torch.get_num_threads() == 4
        assert len(list(registry.glob("*.job"))) == 1  # the dead job's file is gone
    finally:
        other.kill()


def test_run_threads_overrides(registry, monkeypatch):
    import torch

    monkeypatch.setattr(cpu_share, "cpus_available", lambda *a, **k: 4)
    assert cpu_share.start(3) == 3 and torch.get_num_threads() == 3
    assert cpu_share.rebalance(force=True) is None and torch.get_num_threads() == 3


def test_cgroup_v2_and_v1_quotas(tmp_path):
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "cpu.max").write_text("150000 100000\n")
    (tmp_path / "proc_v2").write_text("0::/job\n")
    assert cpu_share.cgroup_cpus(v2, tmp_path / "proc_v2") == 2  # 1.5 CPUs: rounded up
    (v2 / "job" / "cpu.max").write_text("max 100000\n")
    assert cpu_share.cgroup_cpus(v2, tmp_path / "proc_v2") is None
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "slurm").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "slurm" / "cpu.cfs_quota_us").write_text("100000")
    (v1 / "cpu,cpuacct" / "slurm" / "cpu.cfs_period_us").write_text("100000")
    (tmp_path / "proc_v1").write_text("4:cpu,cpuacct:/slurm\n3:memory:/slurm\n")
    assert cpu_share.cgroup_cpus(v1, tmp_path / "proc_v1") == 1


def test_slurm_cpus_per_task_bounds_the_share(tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    assert cpu_share.cpus_available(empty, {"SLURM_CPUS_PER_TASK": "1"}, empty / "cgroup") == 1
    assert cpu_share.cpus_available(empty, {}, empty / "cgroup") == len(os.sched_getaffinity(0))
