"""Integration tier: the real CLI in subprocesses, a real sqlite MLflow store, one small sweep
shared by every test of the session (it is the expensive part)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, SMALL, seed_job_store
from vlm_sweeps import naming

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


def job_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'")


def popen(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "vlm_sweeps.run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_training(uri: str, proc: subprocess.Popen, runs_dir: Path, timeout: float = 240) -> str:
    """The run id, once the job `proc` holds its run (its pid on the run), has logged a training
    step since, and its checkpoint exists (something to resume from)."""
    client = MlflowClient(uri)
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        for run in job_runs(uri) if not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists() else []:
            tags = run.data.tags
            if tags.get(naming.TAG_PID) != str(proc.pid) or tags.get(naming.TAG_STATUS) != "running":
                continue
            since = int(tags.get(naming.TAG_PREFIX + "resumed_from_step", "0"))
            checkpoint = runs_dir / tags[naming.TAG_SIGNATURE] / "checkpoint.pt"
            if (any(m.step > since for m in client.get_metric_history(run.info.run_id, naming.TRAIN_LOSS))
                    and checkpoint.is_file()):
                return run.info.run_id
        time.sleep(0.5)
    raise AssertionError("the job never logged a training step")
