"""Torch threads from the job's share of the host's CPUs: jobs running at once on one host split its
CPUs, a SIGKILLed job stops counting at once, cgroup quotas (v2, v1) and SLURM's CPUs per task bound
the share, `run.threads` overrides it. The jobs are real processes with a private registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from vlm_sweeps import cpu_share

# A job process in miniature: one command a line on stdin, one JSON reply a line on stdout.
WORKER = """
import json, os, sys
import torch
from vlm_sweeps import cpu_share
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "start":
        value = cpu_share.start(None if arg == "none" else int(arg))
    elif cmd == "pin":  # as SLURM's cgroup plugin pins each job to CPUs of its own
        os.sched_setaffinity(0, {int(c) for c in arg.split(",")})
        value = None
    elif cmd == "rebalance":
        value = cpu_share.rebalance(force=True)
    print(json.dumps({"value": value, "current": cpu_share.current(), "torch": torch.get_num_threads()}), flush=True)
"""


class Job:
    def __init__(self, registry, **env_extra: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env.update(PYTHONPATH=str(REPO), VLM_SWEEPS_CPU_REGISTRY=str(registry), **env_extra)
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"worker exited with {self.proc.wait()}"
        return json.loads(line)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture()
def jobs(tmp_path):
    started: list[Job] = []

    def make(**env_extra: str) -> Job:
        started.append(Job(tmp_path / "registry", **env_extra))
        return started[-1]

    yield make
    for job in started:
        if job.proc.poll() is None:
            job.kill()


def cpus() -> int:
    return cpu_share.cpus_available(environ={})  # the workers run without SLURM variables


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_two_jobs_share_the_cpus_and_a_killed_one_stops_counting(jobs, tmp_path):
    first, second = jobs(), jobs()
    alone = first.ask("start none")
    assert alone["torch"] == alone["current"] == cpus()  # alone: every CPU it may use
    both = second.ask("start none")
    half = max(1, cpus() // 2)
    assert both["torch"] == both["value"] == half
    assert first.ask("rebalance")["torch"] == half  # the first job sees the second one too
    assert len(list((tmp_path / "registry").iterdir())) == 2
    assert cpu_share.live_jobs(tmp_path / "registry") == 2
    assert cpu_share.live_jobs(tmp_path / "registry", cpus={-1}) == 1  # none runs on those CPUs: alone

    second.kill()  # no cleanup runs: its lock alone told that it was live
    again = first.ask("rebalance")
    assert again["torch"] == again["current"] == cpus()
    assert again["value"] == (cpus() if half != cpus() else None)  # the new count, when it changed
    assert [p.name for p in (tmp_path / "registry").iterdir()] == [str(first.proc.pid)]  # dead file removed


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin two jobs apart")
def test_jobs_pinned_to_disjoint_cpus_do_not_share(jobs, tmp_path):
    a, b = sorted(os.sched_getaffinity(0))[:2]
    first, second = jobs(), jobs()
    first.ask(f"pin {a}")
    second.ask(f"pin {b}")
    assert first.ask("start none")["torch"] == 1  # its one CPU
    assert second.ask("start none")["torch"] == 1
    registry = tmp_path / "registry"
    assert cpu_share.live_jobs(registry, cpus={a}) == 1  # on CPU a only the first job runs: it shares with nobody
    assert cpu_share.live_jobs(registry, cpus={a, b}) == 2  # a job spanning both CPUs competes with both


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_run_threads_overrides_and_still_counts_as_a_job(jobs):
    fixed, auto = jobs(), jobs()
    reply = fixed.ask("start 3")
    assert reply["torch"] == reply["value"] == reply["current"] == 3
    assert auto.ask("start none")["torch"] == max(1, cpus() // 2)  # the fixed job uses CPUs too
    reply = fixed.ask("rebalance")
    assert reply["value"] is None and reply["torch"] == 3


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_slurm_cpus_per_task_bounds_the_threads(jobs):
    reply = jobs(SLURM_CPUS_PER_TASK="1").ask("start none")
    assert reply["torch"] == reply["current"] == 1


def test_rebalance_is_rate_limited_and_inert_before_start(monkeypatch):
    monkeypatch.setattr(cpu_share, "_threads", None)
    assert cpu_share.rebalance(force=True) is None and cpu_share.current() is None
    monkeypatch.setattr(cpu_share, "_threads", cpu_share._Threads(os.getpid(), 10**6, None, time.monotonic()))
    assert cpu_share.rebalance() is None  # within REBALANCE_EVERY_S of the last count: no re-count
    assert cpu_share.current() == 10**6


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_of_the_process_own_cgroup(tmp_path):
    root, proc = tmp_path / "cgroup", tmp_path / "proc_cgroup"
    write(proc, "0::/jobs/job1\n")
    write(root / "cpu.max", "max 100000\n")
    write(root / "jobs" / "job1" / "cpu.max", "max 100000\n")
    affinity = len(os.sched_getaffinity(0))
    assert cpu_share.cpus_available(root, {}, proc) == affinity  # "max": no limit
    write(root / "jobs" / "job1" / "cpu.max", "50000 100000\n")  # half a CPU: rounds up to one
    assert cpu_share.cgroup_cpus(root, proc) == 1
    assert cpu_share.cpus_available(root, {}, proc) == 1
    write(root / "jobs" / "job1" / "cpu.max", "max 100000\n")
    write(root / "jobs" / "cpu.max", "150000 100000\n")  # a parent's quota applies too
    assert cpu_share.cgroup_cpus(root, proc) == 2
    write(proc, "0::/elsewhere\n")  # own cgroup not visible (a namespace): the root's file
    write(root / "cpu.max", "100000 100000\n")
    assert cpu_share.cgroup_cpus(root, proc) == 1


def test_cgroup_v1_quota(tmp_path):
    root, proc = tmp_path / "cgroup", tmp_path / "proc_cgroup"
    write(proc, "5:memory:/slurm/job1\n4:cpu,cpuacct:/slurm/job1\n")
    folder = root / "cpu,cpuacct" / "slurm" / "job1"
    write(folder / "cpu.cfs_period_us", "100000\n")
    write(folder / "cpu.cfs_quota_us", "-1\n")
    assert cpu_share.cgroup_cpus(root, proc) is None  # -1: no limit
    assert cpu_share.cpus_available(root, {}, proc) == len(os.sched_getaffinity(0))
    write(folder / "cpu.cfs_quota_us", "250000\n")
    assert cpu_share.cgroup_cpus(root, proc) == 3
    assert cpu_share.cpus_available(root, {}, proc) == min(3, len(os.sched_getaffinity(0)))


def test_slurm_allocation_is_the_job_own_not_shared():
    assert cpu_share.cpus_available(environ={"SLURM_CPUS_PER_TASK": "1"}) == 1
    # 4 jobs with 4 CPUs each on a 16-CPU node keep their 4; 6 jobs of 16 CPUs each share 16
    assert cpu_share.share(4, 16, 4) == 4
    assert cpu_share.share(16, 16, 6) == 16 // 6
    assert cpu_share.share(None, 2, 2) == 1 and cpu_share.share(None, 1, 3) == 1
