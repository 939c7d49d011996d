"""Torch's CPU thread count, from the CPUs this job may use, shared with the other vlm_sweeps jobs
running on the same host at the same time.

Torch's default is one thread per core it sees, whatever the cgroup quota, `SLURM_CPUS_PER_TASK` or
the other jobs on the machine: two tiny jobs on a 2-core machine with default threads train 5-25x
slower than with one thread each. A job here asks for its share instead:

    threads = max(1, min(own allocation, shared CPUs // jobs sharing them))

- shared CPUs: its CPU affinity and the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), which
  every process of the machine or container draws on;
- own allocation: `SLURM_CPUS_PER_TASK`, the job's alone;
- jobs sharing them: the live jobs of a host-wide registry whose CPU affinity overlaps this one's
  (jobs pinned to disjoint CPU sets, as SLURM's cgroup plugin does, do not compete).

The registry is a folder (`VLM_SWEEPS_CPU_REGISTRY`, default `<tmp>/vlm_sweeps-cpu-<uid>`) with one
file per job process, named by its pid and holding its CPU set, on which the process holds an
exclusive POSIX (fcntl) lock while it runs. A job is live while its lock is held: the kernel drops
the lock when the process exits however it dies (SIGKILL included), and whoever then finds the
file removes it. `run.threads` (an int) overrides the count; the job still registers, as it still
uses CPUs. Torch is imported only when a count is set.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

REGISTRY_ENV = "VLM_SWEEPS_CPU_REGISTRY"
REBALANCE_EVERY_S = 5.0  # rebalance() re-counts the jobs at most this often
STALE_TEMP_S = 60.0  # a registration's temporary file left this long unlocked: its job died registering


# --- the CPUs this process may use ----------------------------------------------------------------

def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _own_cgroups(proc_cgroup: str | Path) -> dict[str, str]:
    """{"v2" | v1 controller list such as "cpu,cpuacct": this process's cgroup path}."""
    found: dict[str, str] = {}
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            found["v2"] = path
        elif "cpu" in controllers.split(","):
            found[controllers] = path
    return found


def _dirs_upwards(mount: Path, path: str | None) -> list[Path]:
    """The cgroup folder of `path` under `mount` and its ancestors up to `mount` (a quota anywhere
    above applies too); `mount` alone when the path is not visible there (another namespace)."""
    if path:
        own = mount / path.strip("/")
        if own.is_dir():
            return [own, *[p for p in own.parents if p == mount or mount in p.parents]]
    return [mount]


def _read_words(path: Path) -> list[str] | None:
    try:
        return path.read_text().split()
    except OSError:
        return None


def _quota_v2(folder: Path) -> int | None:
    words = _read_words(folder / "cpu.max")  # "max 100000" (no limit) or "<quota> <period>"
    if not words or words[0] == "max":
        return None
    try:
        quota, period = int(words[0]), int(words[1]) if len(words) > 1 else 100_000
    except ValueError:
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None


def _quota_v1(folder: Path) -> int | None:
    quota, period = _read_words(folder / "cpu.cfs_quota_us"), _read_words(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota[0]), int(period[0])  # type: ignore[index]
    except (TypeError, IndexError, ValueError):
        return None
    return math.ceil(q / p) if q > 0 and p > 0 else None  # -1: no limit


def cgroup_cpus(cgroup_root: str | Path = "/sys/fs/cgroup", proc_cgroup: str | Path = "/proc/self/cgroup") -> int | None:
    """The CPU quota of this process's cgroup (v2 or v1, its own and its ancestors'), rounded up;
    None when there is none."""
    root, own = Path(cgroup_root), _own_cgroups(proc_cgroup)
    quotas = []
    for mount in (root, root / "unified"):  # unified: cgroup v2 beside v1 (hybrid)
        quotas += [_quota_v2(d) for d in _dirs_upwards(mount, own.get("v2"))]
    v1 = [(c, p) for c, p in own.items() if c != "v2"] or [("cpu", None)]
    for controllers, path in v1:
        for name in dict.fromkeys([controllers, "cpu,cpuacct", "cpu"]):
            quotas += [_quota_v1(d) for d in _dirs_upwards(root / name, path)]
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def slurm_cpus(environ: Mapping[str, str] = os.environ) -> int | None:
    """`SLURM_CPUS_PER_TASK`: this job's own allocation, when SLURM gave one."""
    try:
        value = int(environ.get("SLURM_CPUS_PER_TASK", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _shared_cpus(cgroup_root: str | Path, proc_cgroup: str | Path) -> int:
    quota = cgroup_cpus(cgroup_root, proc_cgroup)
    return max(1, min(len(_affinity()), quota or math.inf))


def cpus_available(cgroup_root: str | Path = "/sys/fs/cgroup", environ: Mapping[str, str] = os.environ,
                   proc_cgroup: str | Path = "/proc/self/cgroup") -> int:
    """The CPUs this process may use: the fewest of its affinity, its cgroup quota and
    `SLURM_CPUS_PER_TASK`; at least 1. Parameters point at other files and variables (tests)."""
    own = slurm_cpus(environ)
    return max(1, min(_shared_cpus(cgroup_root, proc_cgroup), own or math.inf))


def share(own: int | None, shared: int, jobs: int) -> int:
    """Threads for one of `jobs` jobs drawing on `shared` CPUs, with an allocation `own` of its own."""
    return max(1, min(own or math.inf, shared // max(1, jobs)))


# --- the registry of running jobs -----------------------------------------------------------------

def registry_dir(environ: Mapping[str, str] = os.environ) -> Path:
    default = Path(tempfile.gettempdir()) / f"vlm_sweeps-cpu-{os.getuid()}"
    return Path(environ.get(REGISTRY_ENV) or default)


def _register(folder: Path) -> tuple[int, Path]:
    """This process's file, locked; (its fd, its path). It is written and locked under a temporary
    name and renamed into place, so no other job ever sees it unlocked."""
    import fcntl

    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / str(os.getpid())
    tmp = folder / f".{os.getpid()}.{time.monotonic_ns()}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": os.getpid(), "cpus": sorted(_affinity())}).encode())
        os.replace(tmp, path)  # over a dead job's file with this pid, if any: same lock, same inode
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return fd, path


def _is_live(path: Path) -> tuple[bool, set[int] | None]:
    """(whether its lock is held, the job's CPU set when readable); removes the file of a dead job."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False, None
    except OSError:  # not ours to read: count it, to be safe
        return True, None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # fails while its owner holds LOCK_EX
        except OSError:
            try:
                cpus = set(json.loads(os.read(fd, 1 << 16) or b"{}").get("cpus") or []) or None
            except (OSError, ValueError, TypeError, AttributeError):
                cpus = None
            return True, cpus
        try:  # dead: remove it, unless a new job with the same pid renamed its own file there meanwhile
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                path.unlink()
        except OSError:
            pass
        return False, None
    finally:
        os.close(fd)


def _remove_stale_temp(path: Path) -> None:
    """A registration's temporary file whose job was killed before renaming it (never locked for
    long: it is locked at once and renamed)."""
    try:
        if time.time() - path.stat().st_mtime > STALE_TEMP_S:
            _is_live(path)  # removes it when unlocked
    except OSError:
        pass


def live_jobs(folder: Path, cpus: set[int] | None = None) -> int:
    """The live jobs registered in `folder` whose CPUs overlap `cpus` (all, when None), this
    process included when it is registered there; at least 1. A POSIX lock cannot be tested by its
    own holder (and closing any descriptor of the file would drop it), so this process's own file is
    never opened here."""
    mine = str(os.getpid())
    count = 1 if _registered_in(folder) else 0
    try:
        names = os.listdir(folder)
    except OSError:
        return max(1, count)
    for name in names:
        if name.startswith("."):
            _remove_stale_temp(folder / name)
        if not name.isdigit() or name == mine:
            continue
        live, theirs = _is_live(folder / name)
        if live and (cpus is None or theirs is None or bool(theirs & cpus)):
            count += 1
    return max(1, count)


# --- this process's thread count ------------------------------------------------------------------

@dataclass
class _Registration:
    fd: int
    path: Path
    pid: int  # a forked child inherits this object, not the lock: it must not use or remove the file


@dataclass
class _Threads:
    pid: int
    threads: int
    override: int | None
    checked: float  # time.monotonic() of the last count


_registration: _Registration | None = None
_threads: _Threads | None = None
_warned: set[Path] = set()


def _mine(obj):
    return obj if obj is not None and obj.pid == os.getpid() else None


def _registered_in(folder: Path) -> bool:
    reg = _mine(_registration)
    try:
        return reg is not None and reg.path.parent == folder and os.stat(reg.path).st_ino == os.fstat(reg.fd).st_ino
    except OSError:
        return False


def _ensure_registered() -> bool:
    """Register this process once; again if its file was removed meanwhile (a temp-folder cleaner
    on a job of days), so that the other jobs keep counting it. False when the registry is unusable
    (read-only temp folder, no fcntl): the job then counts alone."""
    global _registration
    folder = registry_dir()
    if _registered_in(folder):
        return True
    if _mine(_registration) is not None:
        _unregister(_registration)
    try:
        fd, path = _register(folder)
    except (OSError, ImportError) as err:
        _registration = None
        if folder not in _warned:  # once, not at every rebalance
            _warned.add(folder)
            log.warning("CPU registry %s unusable (%s): this job counts itself alone", folder, err)
        return False
    _registration = _Registration(fd, path, os.getpid())
    return True


def _set_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _count() -> tuple[int, int, int]:
    """(threads, CPUs available, jobs sharing them) for this process now."""
    registered = _ensure_registered()
    jobs = live_jobs(registry_dir(), cpus=_affinity()) if registered else 1
    shared, own = _shared_cpus("/sys/fs/cgroup", "/proc/self/cgroup"), slurm_cpus()
    return share(own, shared, jobs), min(shared, own or shared), jobs


def start(override: int | None) -> int:
    """Register this process (once) and set torch's thread count: `override` (`run.threads`) when
    given, else this job's share of the CPUs; returns the count. Safe to call for each job that a
    process runs (Hydra's basic launcher runs a sweep's jobs one after another in one process)."""
    global _threads
    if override is not None:
        _ensure_registered()  # it still uses CPUs: the other jobs count it
        threads = int(override)
        log.info("torch threads: %d (run.threads)", threads)
    else:
        threads, cpus, jobs = _count()
        log.info("torch threads: %d (%d CPUs available, %d vlm_sweeps jobs sharing them)", threads, cpus, jobs)
    _threads = _Threads(os.getpid(), threads, override, time.monotonic())
    _set_threads(threads)
    return threads


def rebalance(force: bool = False) -> int | None:
    """Re-count the jobs sharing this job's CPUs, at most once per REBALANCE_EVERY_S (`force`: now),
    and set the new thread count when it changed; returns it then, else None. Cheap enough to call
    every training step. Does nothing before `start`, or when `run.threads` overrides the count."""
    state = _mine(_threads)
    if state is None or state.override is not None:
        return None
    now = time.monotonic()
    if not force and now - state.checked < REBALANCE_EVERY_S:
        return None
    state.checked = now
    threads, cpus, jobs = _count()
    if threads == state.threads:
        return None
    # debug: other jobs (anyone's) starting and ending on the host would fill a job's log with these
    log.debug("torch threads: %d -> %d (%d CPUs available, %d vlm_sweeps jobs sharing them)",
              state.threads, threads, cpus, jobs)
    state.threads = threads
    _set_threads(threads)
    return threads


def current() -> int | None:
    """The count `start` or `rebalance` set last (None before `start`)."""
    state = _mine(_threads)
    return state.threads if state is not None else None


def _unregister(reg: _Registration) -> None:
    try:
        if os.stat(reg.path).st_ino == os.fstat(reg.fd).st_ino:
            reg.path.unlink()
    except OSError:
        pass
    try:
        os.close(reg.fd)  # releases the lock
    except OSError:
        pass


def stop() -> None:
    """Unregister this process: the other jobs take its CPUs back at their next rebalance."""
    global _registration, _threads
    if _mine(_registration) is not None:
        _unregister(_registration)
    _registration = _threads = None


atexit.register(stop)
