"""A RUNNING run is alive while its job's heartbeat is fresh and its pid runs."""

import socket
import subprocess
import sys
import time

from vlm_sweeps import naming
from vlm_sweeps.liveness import state_of

NOW = 1_000_000.0


def tags(beat_age: float, pid: int | None = None, host: str = "elsewhere", every: float = 30) -> dict:
    found = {naming.TAG_HEARTBEAT: str(NOW - beat_age), naming.TAG_HEARTBEAT_EVERY: str(every),
             naming.TAG_HOST: host, naming.TAG_STATUS: "running"}
    if pid is not None:
        found[naming.TAG_PID] = str(pid)
    return found


def test_fresh_and_stale_heartbeats():
    assert state_of("RUNNING", tags(10), NOW) == "running"
    assert state_of("RUNNING", tags(30 * naming.DEAD_AFTER + 1), NOW) == "dead"


def test_a_dead_pid_on_this_host_is_dead_at_once():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert state_of("RUNNING", tags(1, proc.pid, socket.gethostname()), NOW) == "dead"
    assert state_of("RUNNING", tags(1, proc.pid, "elsewhere"), NOW) == "running"  # another host's pid: unknown


def test_terminal_and_interrupted_states():
    assert state_of("FINISHED", {}) == "finished"
    assert state_of("FAILED", {}) == "failed"
    assert state_of("KILLED", {}) == "killed"
    assert state_of("RUNNING", {**tags(10_000), naming.TAG_STATUS: "interrupted"}, NOW) == "interrupted"
    assert state_of("RUNNING", {}) == "running"  # a run of a version without heartbeats


def test_a_zombie_on_this_host_is_dead():
    """Killed but not reaped yet by its parent: `kill -0` still answers, the job is gone."""
    import os
    import signal

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(proc.pid, signal.SIGKILL)
        for _ in range(100):  # until the kernel made it a zombie
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.02)
        assert state_of("RUNNING", tags(1, proc.pid, socket.gethostname()), NOW) == "dead"
    finally:
        proc.wait()


def test_the_jobs_own_status_tag_comes_first():
    stale = tags(10_000)
    assert state_of("RUNNING", {**stale, naming.TAG_STATUS: "requeued"}, NOW) == "interrupted"  # waits in SLURM
    assert state_of("RUNNING", {**stale, naming.TAG_STATUS: "failed"}, NOW) == "failed"  # killed while closing
    assert state_of("RUNNING", {**stale, naming.TAG_STATUS: "superseded"}, NOW) == "killed"
    assert state_of("RUNNING", {naming.TAG_HEARTBEAT: "x", naming.TAG_HEARTBEAT_EVERY: "30"}, NOW) == "running"
    assert state_of("RUNNING", {**tags(10_000), naming.TAG_HEARTBEAT_EVERY: "0"}, NOW) == "running"  # no beats


def test_resume_hint():
    from vlm_sweeps.liveness import resume_hint

    assert resume_hint({naming.TAG_COMMAND: "cd /w && python -m vlm_sweeps.run seed=1"}).endswith("seed=1")
    assert resume_hint({}) is None
