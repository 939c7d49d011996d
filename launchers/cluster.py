"""What the launcher asks SLURM: its array limit, the jobs still alive, the state of each job.

All calls go through the SLURM client commands (sacct, squeue, scontrol), so they need the same
environment as `sbatch` ($SLURM_CONF on a test cluster)."""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_MAX_ARRAY_SIZE = 1001  # SLURM's own default MaxArraySize
# sacct states after which a job will not run again (a requeued job shows REQUEUED, then PENDING)
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED"}
REQUEUED = {"REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"}


@dataclass
class SlurmState:
    job_id: str
    state: str  # of the latest attempt, e.g. PENDING, RUNNING, COMPLETED, FAILED ("CANCELLED by 0" -> CANCELLED)
    exit_code: str = ""
    requeues: int = 0  # earlier attempts that ended in a requeue (preemption, time-out, scontrol requeue)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


def _run(args: list[str], timeout: float = 60) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=timeout).stdout


def max_array_size() -> int:
    """Tasks one array may hold (array indices run 0..MaxArraySize-1)."""
    try:
        out = _run(["scontrol", "show", "config"])
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("scontrol show config failed (%s); assuming MaxArraySize=%d", err, DEFAULT_MAX_ARRAY_SIZE)
        return DEFAULT_MAX_ARRAY_SIZE
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(match.group(1)) if match else DEFAULT_MAX_ARRAY_SIZE


def expand_ids(job_id: str) -> list[str]:
    """`123_[0-2,5%2]` -> [123_0, 123_1, 123_2, 123_5]; `123_4`, `123` -> themselves."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if match is None:
        return [job_id]
    main, ranges = match.groups()
    ids = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        ids += [f"{main}_{i}" for i in range(int(low), int(high or low) + 1)]
    return ids


def parse_sacct(text: str) -> dict[str, SlurmState]:
    """`sacct -D -X -n -P -o JobID,State,ExitCode` -> {job id: state of its latest attempt}.
    With -D, sacct lists every attempt of a requeued job, oldest first."""
    attempts: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 3 or not fields[0]:
            continue
        state = (fields[1].split() or [""])[0]
        for job_id in expand_ids(fields[0]):
            attempts.setdefault(job_id, []).append((state, fields[2]))
    # every attempt but the latest ended in a requeue, and so did the latest if it says so
    return {job_id: SlurmState(job_id, seen[-1][0], seen[-1][1],
                               len(seen) - 1 + (seen[-1][0] in REQUEUED))
            for job_id, seen in attempts.items()}


def job_states(job_ids: list[str]) -> dict[str, SlurmState]:
    """sacct's view of these jobs (array tasks as `<array id>_<index>`); {} when sacct is unavailable."""
    mains = sorted({j.split("_")[0] for j in job_ids})
    if not mains:
        return {}
    try:
        out = _run(["sacct", "-D", "-X", "-n", "-P", "-o", "JobID,State,ExitCode", "-j", ",".join(mains)])
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("sacct failed: %s", err)
        return {}
    return parse_sacct(out)


def alive_jobs() -> set[str] | None:
    """Ids of this user's jobs that are queued or running (array tasks one by one); None if squeue fails."""
    try:
        out = _run(["squeue", "--me", "-h", "-r", "-o", "%i"])
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("squeue failed: %s", err)
        return None
    return {job for line in out.split() for job in expand_ids(line.strip())}
