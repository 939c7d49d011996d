"""Integration tier: the real CLI in subprocesses, a real sqlite MLflow store, one small sweep
shared by every test of the session (it is the expensive part)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, SMALL, seed_job_store

SWEEP = ["encoder=clip,siglip,dinosiglip", "resize=naive,letterbox"]


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 900, seed: bool = True):
    """`python ARGS` in `cwd`; a job's sqlite store is given its schema first (seed_store) unless `seed`
    is false (a test that a store is not created)."""
    if seed and args[:2] == ["-m", "vlm_sweeps.run"]:
        seed_job_store(args, cwd)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Sweep:
    cwd: Path
    uri: str
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory) -> Sweep:
    """The README's 6-run sweep with small synthetic settings, run twice from a fresh directory."""
    cwd = tmp_path_factory.mktemp("sweep_cwd")
    args = ["-m", "vlm_sweeps.run", "-m", *SWEEP, *SMALL]
    first = run_cli(args, cwd)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    second = run_cli(args, cwd)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return Sweep(cwd, f"sqlite:///{cwd / 'mlflow.db'}", first, second)
