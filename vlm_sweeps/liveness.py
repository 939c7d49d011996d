"""Is a job's run alive? Read from what the store holds: MLflow's status and the tags a job writes
while it holds its run (tracking.Heartbeat: heartbeat, its interval, host and pid).

A RUNNING run is dead when its heartbeat is older than `naming.DEAD_AFTER` intervals (SIGKILL, an
OOM kill, a lost node: the job had no chance to say so), or at once when its host is this one and
its pid no longer runs (or is a zombie). Runs of versions before heartbeats (no heartbeat tag)
count as running unless their host:pid says otherwise.

The job's own status tag comes first where MLflow's status lags behind it: `interrupted` and
`requeued` (SLURM) runs stay RUNNING while they wait for their resume, and a job killed between
writing `failed` / `superseded` and closing the run is failed / killed, not dead.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
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
    told = tags.get(naming.TAG_STATUS)
    if told in ("interrupted", "requeued"):
        return "interrupted"  # Ctrl-C, SIGTERM, preemption, a SLURM requeue: resumable from its checkpoint
    if told == "failed":
        return "failed"
    if told == "superseded":
        return "killed"
    return "dead" if dead(tags, now, host) else "running"


def dead(tags: Mapping[str, str], now: float | None = None, host: str | None = None) -> bool:
    """Whether the job that holds a RUNNING run is gone (see the module's docstring)."""
    host = host or socket.gethostname()
    pid = tags.get(naming.TAG_PID, "")
    if tags.get(naming.TAG_HOST) == host and pid.isdigit() and not _runs(int(pid)):
        return True
    beat, every = tags.get(naming.TAG_HEARTBEAT), tags.get(naming.TAG_HEARTBEAT_EVERY)
    try:
        beat_s, every_s = float(beat), float(every)
    except (TypeError, ValueError):
        return False
    return every_s > 0 and (time.time() if now is None else now) - beat_s > naming.DEAD_AFTER * every_s


def _runs(pid: int) -> bool:
    """Alive and not a zombie (a killed child its parent has not reaped yet still answers kill 0)."""
    if not pid_alive(pid):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or gone meanwhile: kill 0 said alive
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def heartbeat_age(tags: Mapping[str, str], now: float | None = None) -> float | None:
    try:
        return (time.time() if now is None else now) - float(tags[naming.TAG_HEARTBEAT])
    except (KeyError, ValueError):
        return None


def resume_hint(tags: Mapping[str, str]) -> str | None:
    """The command that resumes the run's job (as the job recorded it), if any."""
    return tags.get(naming.TAG_COMMAND)
