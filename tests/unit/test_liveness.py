"""A RUNNING run is alive while its job's heartbeat is fresh and its pid runs."""

import socket
import subprocess
import sys

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
