"""The launcher's edges: what the plugin module imports, what a job takes from its environment,
the manifest on disk, and the layering (vlm_sweeps never imports launchers)."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from launchers import manifest
from launchers.entry import LEAKY_ENV, SweepJob, scrub_environment

REPO = Path(__file__).resolve().parents[2]


def test_plugin_module_is_light():
    """Hydra imports every hydra_plugins module on every run, local ones too."""
    code = ("import sys, hydra_plugins.vlm_sweeps_launcher.slurm_launcher as m; "
            "print(sorted({'submitit', 'mlflow', 'torch', 'launchers', 'vlm_sweeps'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hydra_plugins_is_a_namespace_package():
    assert not (REPO / "hydra_plugins" / "__init__.py").exists()


def test_leaky_variables_never_reach_the_job():
    environ = {"MLFLOW_RUN_ID": "abc", "MLFLOW_EXPERIMENT_ID": "3", "RANK": "1", "PATH": "/bin",
               "MLFLOW_TRACKING_TOKEN": "secret"}  # credentials for a server do pass
    assert sorted(scrub_environment(environ)) == ["MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID", "RANK"]
    assert environ == {"PATH": "/bin", "MLFLOW_TRACKING_TOKEN": "secret"}
    assert "MLFLOW_RUN_ID" in LEAKY_ENV


def test_a_requeued_job_carries_its_frozen_config():
    job = SweepJob({"seed": 7, "tracking": {"uri": "sqlite:////x.db"}}, "abc123", "sweep1")
    job.interrupted = True
    delayed = job.checkpoint()
    again = pickle.loads(pickle.dumps(delayed.function))
    assert (again.config, again.signature, again.sweep_id) == (job.config, "abc123", "sweep1")


def test_manifest_round_trip_and_latest(tmp_path):
    def make(sweep_id):
        return manifest.Manifest(sweep_id=sweep_id, submitted_at="2026-01-01T00:00:00", tracking_uri="u",
                                 experiment="e", submitit_folder="f", root=str(tmp_path),
                                 jobs=[manifest.JobEntry(0, "sig", ["seed=1"], {"encoder": "clip"}, job_id="5_0")])
    first = make("multirun_a")
    manifest.write(first)
    import os
    import time

    os.utime(first.path(), (time.time() - 10, time.time() - 10))
    manifest.write(make("multirun_b"))
    assert manifest.find(tmp_path, None).sweep_id == "multirun_b"
    assert manifest.find(tmp_path, "multirun_a") == first
    with pytest.raises(FileNotFoundError, match="multirun_a"):
        manifest.find(tmp_path, "nope")
    with pytest.raises(FileNotFoundError, match="hydra/launcher=slurm"):
        manifest.find(tmp_path / "empty", None)


def test_vlm_sweeps_never_imports_launchers():
    for path in (REPO / "vlm_sweeps").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in ("launchers", "hydra_plugins") for n in names), path
