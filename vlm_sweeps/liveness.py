"""Is a job's run alive? Read from what the store holds: MLflow's status and the tags a job writes
while it holds its run (tracking.Heartbeat: heartbeat, its interval, host and pid).

A RUNNING run is dead when its heartbeat is older than `naming.DEAD_AFTER` intervals (SIGKILL, an
OOM kill, a lost node: the job had no chance to say so), or at once when its host is this one and
its pid no longer runs. Runs of versions before heartbeats (no heartbeat tag) count as running.
"""

from __future__ import annotations

import socket
import time
from typing import Mapping

from vlm_sweeps import naming
from vlm_sweeps.locks import pid_alive

STATES = ("running", "dead", "interrupted", "failed", "killed", "finished")


def state_of(status: str, tags: Mapping[str, str], now: float | None = None, host: str | None = None) -> str:
    """running | dead | interrupted | failed | killed | finished, of a run with MLflow `status`
    (RUNNING, FINISHED, FAILED, KILLED, SCHEDULED) and `tags`."""
    if status == "FINISHED":
        return "finished"
    if status == "FAILED":
        return "failed"
    if status == "KILLED":
        return "killed"  # superseded by a newer attempt, or killed through MLflow
    if tags.get(naming.TAG_STATUS) == "interrupted":
        return "interrupted"  # Ctrl-C, SIGTERM, preemption: resumable from its checkpoint
    return "dead" if dead(tags, now, host) else "running"


def dead(tags: Mapping[str, str], now: float | None = None, host: str | None = None) -> bool:
    """Whether the job that holds a RUNNING run is gone (see the module's docstring)."""
    host = host or socket.gethostname()
    pid = tags.get(naming.TAG_PID, "")
    if tags.get(naming.TAG_HOST) == host and pid.isdigit() and not pid_alive(int(pid)):
        return True
    beat, every = tags.get(naming.TAG_HEARTBEAT), tags.get(naming.TAG_HEARTBEAT_EVERY)
    try:
        beat_s, every_s = float(beat), float(every)
    except (TypeError, ValueError):
        return False
    return every_s > 0 and (time.time() if now is None else now) - beat_s > naming.DEAD_AFTER * every_s


def heartbeat_age(tags: Mapping[str, str], now: float | None = None) -> float | None:
    try:
        return (time.time() if now is None else now) - float(tags[naming.TAG_HEARTBEAT])
    except (KeyError, ValueError):
        return None


def resume_hint(tags: Mapping[str, str]) -> str | None:
    """The command that resumes the run's job (as the job recorded it), if any."""
    return tags.get(naming.TAG_COMMAND)
