"""Torch threads from this job's share of the host's CPUs.

Torch's default intra-op thread count is the machine's cores. Two jobs on one 2-core machine
with two threads each train 5 to 30 times slower than with one each (threads spin waiting on each
other), and so do six SLURM jobs on one node. A job's threads are therefore

    max(1, CPUs this process may use // vlm_sweeps jobs running on this host now)

where the CPUs are the fewest of: its affinity mask, its cgroup's CPU quota (v2 `cpu.max`, v1
`cpu.cfs_quota_us`) and `SLURM_CPUS_PER_TASK`. The jobs of a host find each other in a registry
folder (`$VLM_SWEEPS_CPU_REGISTRY`, default `<tmp>/vlm_sweeps-cpu-<uid>`): each holds an fcntl lock
on its own file while it runs, so a job killed by SIGKILL stops counting at once. `rebalance()`,
called by the training loop, re-counts (at most every few seconds) when another job starts or ends.
`run.threads=N` fixes the count instead.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

REBALANCE_EVERY_S = 5.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpus(cgroup_root: Path | str = "/sys/fs/cgroup", proc_cgroup: Path | str = "/proc/self/cgroup") -> int | None:
    """The CPU quota of this process's cgroup, rounded up to whole CPUs; None when unlimited."""
    root = Path(cgroup_root)
    own = ""
    for line in (_read(Path(proc_cgroup)) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and (parts[0] == "0" or "cpu" in parts[1].split(",")):
            own = parts[2].lstrip("/")
            break
    for folder in dict.fromkeys([root / own, root]):  # v2: the process's own cgroup, then the root
        text = _read(folder / "cpu.max")
        if text:
            quota, _, period = text.partition(" ")
            if quota != "max" and period:
                return max(1, math.ceil(int(quota) / int(period)))
            return None
    for folder in dict.fromkeys([root / "cpu" / own, root / "cpu", root / "cpu,cpuacct" / own, root / "cpu,cpuacct"]):
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota and period:
            return None if int(quota) <= 0 else max(1, math.ceil(int(quota) / int(period)))
    return None


def cpus_available(cgroup_root: Path | str = "/sys/fs/cgroup", environ: Mapping[str, str] = os.environ,
                   proc_cgroup: Path | str = "/proc/self/cgroup") -> int:
    """The CPUs this process may use: the fewest of its affinity, its cgroup quota and SLURM's
    CPUs per task; at least 1."""
    limits = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)]
    quota = cgroup_cpus(cgroup_root, proc_cgroup)
    if quota:
        limits.append(quota)
    slurm = environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        limits.append(int(slurm))
    return max(1, min(limits))


def registry() -> Path:
    return Path(os.environ.get("VLM_SWEEPS_CPU_REGISTRY") or Path(tempfile.gettempdir()) / f"vlm_sweeps-cpu-{os.getuid()}")


def live_jobs(folder: Path | None = None) -> int:
    """vlm_sweeps job processes running on this host: registry files whose lock is held (files of
    dead jobs are removed on the way)."""
    folder = folder or registry()
    count = 0
    for entry in folder.glob("*.job"):
        try:
            with open(entry, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                entry.unlink(missing_ok=True)  # nobody holds it: its job is gone
                fcntl.flock(handle, fcntl.LOCK_UN)
        except BlockingIOError:
            count += 1
        except OSError:
            continue
    return count


class CpuShare:
    """This process's registration and its thread count."""

    def __init__(self) -> None:
        self.handle = None
        self.override: int | None = None
        self.threads: int | None = None
        self.checked = 0.0

    def start(self, override: int | None) -> int:
        self.override = override
        if override:
            return self._apply(int(override), "run.threads")
        if self.handle is None:
            folder = registry()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{os.getpid()}.job"
            while True:  # held until this process exits or stop(); retried if a reader removed the file meanwhile
                handle = open(path, "a")
                fcntl.flock(handle, fcntl.LOCK_EX)
                if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    break
                handle.close()
            self.handle = handle
        return self._share(force=True)

    def _share(self, force: bool = False) -> int | None:
        now = time.monotonic()
        if not force and now - self.checked < REBALANCE_EVERY_S:
            return None
        self.checked = now
        cpus, jobs = cpus_available(), max(1, live_jobs())
        return self._apply(max(1, cpus // jobs), f"{cpus} CPUs available, {jobs} vlm_sweeps jobs on this host")

    def rebalance(self, force: bool = False) -> int | None:
        """The new count when it changed, else None (also when not started or fixed by run.threads)."""
        if self.handle is None or self.override:
            return None
        before = self.threads
        after = self._share(force)
        return after if after is not None and after != before else None

    def _apply(self, threads: int, why: str) -> int:
        if threads != self.threads:
            import torch

            torch.set_num_threads(threads)
            log.info("torch threads: %d (%s)", threads, why)
            self.threads = threads
        return threads

    def stop(self) -> None:
        if self.handle is not None:
            Path(self.handle.name).unlink(missing_ok=True)
            self.handle.close()
            self.handle = None


_SHARE = CpuShare()
atexit.register(_SHARE.stop)


def start(override: int | None = None) -> int:
    """Register this process as a job of the host and set its threads (or `override`)."""
    return _SHARE.start(override)


def rebalance(force: bool = False) -> int | None:
    """Re-count the host's jobs (at most every REBALANCE_EVERY_S); the new thread count if it changed."""
    return _SHARE.rebalance(force)


def current() -> int | None:
    return _SHARE.threads


def stop() -> None:
    _SHARE.stop()
