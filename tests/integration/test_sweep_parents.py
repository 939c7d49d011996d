"""A sweep's parent run never stays RUNNING after its sweep: a sweep stopped by a typo in one of its
overrides ends FAILED, saying so, and one whose process was killed (kill -9: no exit hook runs) is
closed FAILED by the next sweep on that host. The real CLI, a real sqlite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, SMALL, seed_store
from tests.integration.conftest import run_cli
from vlm_sweeps import naming

pytestmark = pytest.mark.integration


def sweep_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = '{naming.KIND_SWEEP}'",
                              order_by=["attributes.start_time ASC"])


def test_a_killed_or_mistyped_sweep_leaves_no_running_parent(tmp_path):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    where = [f"tracking.uri={uri}", f"paths.root={tmp_path / 'root'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    killed = subprocess.Popen([sys.executable, "-m", "vlm_sweeps.run", "-m", "seed=1,2", *SMALL, *where], cwd=tmp_path,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while not sweep_runs(uri):
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.5)
    os.killpg(killed.pid, signal.SIGKILL)  # the sweep and its jobs, with no chance to say so
    killed.wait(timeout=30)
    (parent,) = sweep_runs(uri)
    assert parent.info.status == "RUNNING"

    out = run_cli(["-m", "vlm_sweeps.run", "-m", "encoder=clip,clpi", *SMALL, *where], tmp_path)  # a typo
    assert out.returncode != 0
    assert "clpi" in out.stderr
    first, typo = sweep_runs(uri)
    assert first.info.run_id == parent.info.run_id
    assert first.info.status == "FAILED" and f"process {killed.pid}" in first.data.tags[naming.TAG_ERROR]
    assert typo.info.status == "FAILED" and "ended before the sweep did" in typo.data.tags[naming.TAG_ERROR]
