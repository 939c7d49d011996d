"""A tracking URI's credentials never reach what the launcher writes (the frozen config beside
the job, the manifest, the pickled job submitit sends), and the job on the node gets the real URI
back from its environment."""

from __future__ import annotations

import pickle

import pytest

from launchers import slurm
from launchers.entry import SweepJob
from launchers.freeze import Composer, freeze, write_record
from vlm_sweeps.redact import URI_ENV, restore_uri

SECRET_URI = "http://alice:SECRET@127.0.0.1:5000"


def test_the_frozen_record_and_the_pickled_job_hold_no_secret(hydra_loader, tmp_path, monkeypatch):
    loader, master = hydra_loader
    job = freeze(Composer(loader), master, ["encoder=siglip", f"tracking.uri={SECRET_URI}"], 0, tmp_path)
    write_record(job)
    on_disk = "".join(p.read_text() for p in (job.job_dir / ".hydra").iterdir())
    assert "SECRET" not in on_disk and "http://***@127.0.0.1:5000" in on_disk

    sent = {}

    def fake_arrays(units, options, folder):  # what submitit would pickle, and the environment sbatch exports
        import os

        sent["pickles"] = [pickle.dumps(task) for _, _, task, _ in units]
        sent["env"] = os.environ.get(URI_ENV)
        return []

    monkeypatch.delenv(URI_ENV, raising=False)
    monkeypatch.setattr(slurm, "_submit_arrays", fake_arrays)
    slurm._submit([job], [], {}, "sweep", tmp_path)
    assert sent["pickles"] and not any(b"SECRET" in blob for blob in sent["pickles"])
    assert sent["env"] == SECRET_URI  # exported to the jobs while submitting
    import os

    assert URI_ENV not in os.environ  # and not left behind in the submitting process


def test_the_job_restores_the_real_uri_or_says_what_to_export(monkeypatch):
    job = SweepJob({"tracking": {"uri": "http://***@127.0.0.1:5000", "experiment": "e"}}, "sig", None)
    monkeypatch.setenv(URI_ENV, SECRET_URI)
    assert job._uri() == SECRET_URI
    monkeypatch.setenv(URI_ENV, "http://bob:x@other:5000")  # a different store: not used
    with pytest.raises(ValueError, match=f"export {URI_ENV}"):
        job._uri()
    assert restore_uri("sqlite:////tmp/a.db", {}) == "sqlite:////tmp/a.db"


def test_a_whole_submit_leaves_no_secret_behind(hydra_loader, tmp_path, monkeypatch):
    """`-m ... tracking.uri=<with credentials> hydra/launcher=slurm`, up to sbatch: the manifest,
    the frozen records, multirun.yaml, what submitit pickles and what the launcher prints hold
    the URI redacted; the store is looked up with the real one; the jobs get it in their environment."""
    import json
    import os
    from types import SimpleNamespace

    import submitit
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from launchers import manifest
    from vlm_sweeps import tracking

    loader, _ = hydra_loader
    sweep_dir = tmp_path / "sweep"
    master = loader.load_configuration("config", ["hydra/launcher=slurm", f"hydra.sweep.dir={sweep_dir}"],
                                       run_mode=RunMode.MULTIRUN)
    sweep_dir.mkdir()
    (sweep_dir / "multirun.yaml").write_text(f"task:\n- tracking.uri={SECRET_URI}\n")  # as Hydra's sweeper wrote it
    looked_up, sent = [], {}

    class Executor:  # submitit's AutoExecutor, up to the sbatch call
        def __init__(self, folder, cluster, **kwargs):
            pass

        def update_parameters(self, **params):
            pass

        def batch(self):
            import contextlib

            return contextlib.nullcontext()

        def submit(self, task):
            sent.setdefault("pickles", []).append(pickle.dumps(task))
            sent["env"] = os.environ.get(URI_ENV)
            return SimpleNamespace(job_id=f"7_{len(sent['pickles']) - 1}")

    monkeypatch.setattr(submitit, "AutoExecutor", Executor)
    monkeypatch.setattr(tracking, "ensure_experiment", lambda uri, name: looked_up.append(uri) or "1")
    monkeypatch.setattr(slurm.store, "job_runs",
                        lambda uri, experiment, finished_only=False: looked_up.append(uri) or {})
    monkeypatch.delenv(URI_ENV, raising=False)
    params = {k: v for k, v in OmegaConf.to_container(master.hydra.launcher, resolve=True).items() if k != "_target_"}
    params.update(max_array_size=1000, skip_active=False)
    root = tmp_path / "root"
    overrides = [[f"tracking.uri={SECRET_URI}", f"paths.root={root}", f"seed={seed}"] for seed in (1, 2)]
    slurm.launch(params, master, SimpleNamespace(config_loader=loader), overrides, 0)

    assert looked_up and set(looked_up) == {SECRET_URI}  # the launcher's own lookups: the real store
    assert len(sent["pickles"]) == 2 and not any(b"SECRET" in blob for blob in sent["pickles"])
    assert sent["env"] == SECRET_URI and URI_ENV not in os.environ
    record = manifest.find(root, None)
    assert record.tracking_uri == "http://***@127.0.0.1:5000"
    code = sweep_dir / ".code"  # the code snapshot (launchers/snapshot.py): source files, this one among them
    assert code.is_dir()
    for path in [*sweep_dir.rglob("*"), *root.rglob("*")]:
        if path.is_file() and not path.is_relative_to(code):
            assert b"SECRET" not in path.read_bytes(), path
    assert "http://***@127.0.0.1:5000" in (sweep_dir / "multirun.yaml").read_text()
    assert json.loads(record.path().read_text())["tracking_uri"] == "http://***@127.0.0.1:5000"


def test_the_job_runs_with_the_real_uri_and_keeps_its_frozen_config(monkeypatch):
    """SweepJob.__call__ on the node: run_job gets the real URI (also in MLFLOW_TRACKING_URI), and
    the job object, which submitit pickles again on a requeue, still holds the redacted one."""
    import os

    from vlm_sweeps import job as job_module
    from vlm_sweeps import tracking_process

    frozen = {"tracking": {"uri": "http://***@127.0.0.1:5000", "experiment": "e", "process": False}}
    got = {}

    def run_job(cfg, sweep_id=None):
        from types import SimpleNamespace

        got["uri"], got["env"] = cfg.tracking.uri, os.environ["MLFLOW_TRACKING_URI"]
        return SimpleNamespace(signature="sig", run_id="r", skipped=False, metrics={})

    monkeypatch.setattr(job_module, "run_job", run_job)
    monkeypatch.setattr(tracking_process, "prestart", lambda enabled: None)
    monkeypatch.setenv(URI_ENV, SECRET_URI)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://leaked-from-the-submitting-shell:5000")
    job = SweepJob(frozen, "sig", None)
    job()
    assert got == {"uri": SECRET_URI, "env": SECRET_URI}
    assert b"SECRET" not in pickle.dumps(job) and job.config["tracking"]["uri"] == "http://***@127.0.0.1:5000"
    monkeypatch.delenv(URI_ENV)
    with pytest.raises(ValueError, match=f"export {URI_ENV} with the full URI"):
        SweepJob(frozen, "sig", None)()
