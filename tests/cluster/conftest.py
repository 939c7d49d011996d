"""Cluster tier: a real single-node SLURM (munge, MariaDB, slurmdbd, slurmctld, slurmd).

The session-scoped ``slurm_cluster`` fixture runs ``launchers/local_slurm.sh up DIR`` once,
exports what it prints (``SLURM_CONF``...) into ``os.environ`` for the session, and runs
``down DIR`` at the end. When the cluster cannot start, the tests FAIL if the environment
variable ``CI`` is set (this tier is never skipped in CI) and are skipped otherwise.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "launchers" / "local_slurm.sh"
UP_TIMEOUT_S = 900  # a cold start may install the Debian packages first

# sacct states after which a job will not change any more
TERMINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE",
}


def parse_exports(text: str) -> dict[str, str]:
    """``export NAME=VALUE`` lines (shell-quoted) -> {NAME: VALUE}."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        words = shlex.split(line)
        if len(words) != 2 or words[0] != "export" or "=" not in words[1]:
            raise ValueError(f"unexpected line on stdout of local_slurm.sh up: {line!r}")
        name, value = words[1].split("=", 1)
        env[name] = value
    return env


@dataclass
class SlurmCluster:
    dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a SLURM client command against this cluster."""
        return subprocess.run(
            list(args), env={**os.environ, **self.env}, capture_output=True, text=True,
            check=check, timeout=timeout,
        )

    def sbatch(self, *args: str) -> str:
        """Submit with sbatch, return the job id."""
        out = self.run("sbatch", "--parsable", *args).stdout.strip()
        return out.split(";")[0]

    def states(self, job_id: str) -> dict[str, str]:
        """{JobID: State} of the allocation(s) of ``job_id`` (array tasks each), from sacct."""
        out = self.run("sacct", "-j", job_id, "-X", "-n", "-P", "-o", "JobID,State", check=False).stdout
        result = {}
        for line in out.splitlines():
            if "|" in line:
                jid, state = line.split("|", 1)
                result[jid] = state.split()[0] if state else ""  # "CANCELLED by 0" -> CANCELLED
        return result

    def wait(self, job_id: str, n_tasks: int = 1, timeout: float = 60) -> dict[str, str]:
        """Wait until sacct shows ``n_tasks`` allocations of ``job_id`` all in a terminal state."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.states(job_id)
            if len(states) >= n_tasks and all(s in TERMINAL_STATES for s in states.values()):
                return states
            time.sleep(0.5)
        squeue = self.run("squeue", "-a", check=False).stdout
        raise TimeoutError(f"job {job_id} not finished after {timeout}s: sacct {states}\n{squeue}")


def _cannot_start(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the SLURM test cluster must run in CI but could not start: {reason}", pytrace=False)
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    if not sys.platform.startswith("linux"):
        _cannot_start("needs Linux")
    if os.geteuid() != 0:
        _cannot_start("launchers/local_slurm.sh must run as root")
    if shutil.which("bash") is None:
        _cannot_start("bash not found")

    cluster_dir = tmp_path_factory.mktemp("slurm")
    try:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "up", str(cluster_dir)], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=UP_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        subprocess.run(["bash", str(SCRIPT), "down", str(cluster_dir)], capture_output=True, timeout=120)
        _cannot_start(f"'up' did not return within {UP_TIMEOUT_S}s: {exc.stderr}")
    if proc.returncode != 0:
        subprocess.run(["bash", str(SCRIPT), "down", str(cluster_dir)], capture_output=True, timeout=120)
        _cannot_start(f"'up' exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    env = parse_exports(proc.stdout)
    assert "SLURM_CONF" in env, proc.stdout

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield SlurmCluster(dir=cluster_dir, env=env)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        down = subprocess.run(
            ["bash", str(SCRIPT), "down", str(cluster_dir)], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=180,
        )
        if down.returncode != 0:
            print(f"local_slurm.sh down failed:\n{down.stderr}", file=sys.stderr)
