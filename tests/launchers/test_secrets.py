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
