"""A job's config is frozen at submit time: resolved, anchored to the submitting directory, and
composed exactly as Hydra composes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from launchers.freeze import Composer, absolute_uri, anchor, freeze, task_config


@pytest.mark.parametrize("overrides", [
    ["seed=3"],
    ["epochs=2"],  # the schema makes it 2.0: the fast path must convert the same way
    ["encoder=siglip", "seed=4"],
    ["paths.root=/elsewhere", "data.synthetic.n_finetune=200"],  # interpolations follow the override
    ["resize=naive", "scale.finetune.lr=0.1", "benchmarks.suite=[synth_vqa,synth_count]"],
    ["tracking.experiment=other", "llm=llama2_13b"],
])
def test_composer_matches_hydra(hydra_loader, overrides):
    loader, master = hydra_loader
    reference = task_config(loader.load_sweep_config(master, overrides))
    composer = Composer(loader)
    composer.take(master, ["seed=99"])  # a first composition the next ones may reuse
    assert task_config(composer.take(master, overrides)) == reference


def test_composer_composes_once_per_group_combination(hydra_loader):
    loader, master = hydra_loader
    composer = Composer(loader)
    for seed in range(5):
        for encoder in ("clip", "siglip"):
            composer.take(master, [f"encoder={encoder}", f"seed={seed}"])
    assert len(composer.composed) == 2


def test_sweeper_validation_is_reused_not_shared(hydra_loader):
    """Hydra's sweeper composes each job to validate it; the launcher then gets that composition,
    once: a job listed twice gets a fresh one the second time (the launcher changes what it takes)."""
    loader, master = hydra_loader
    composer = Composer.attach(loader)
    assert Composer.attach(loader) is composer and loader.load_sweep_config is composer
    validated = loader.load_sweep_config(master_config=master, sweep_overrides=["seed=1"])
    first = composer.take(master, ["seed=1"])
    assert first is validated
    second = composer.take(master, ["seed=1"])
    assert second is not first and task_config(second) == task_config(first)


def test_a_bad_override_still_fails(hydra_loader):
    loader, master = hydra_loader
    with pytest.raises(Exception, match="nope"):
        Composer(loader).take(master, ["encoder=nope"])
    with pytest.raises(Exception):
        Composer(loader).take(master, ["seeed=1"])  # not in the struct config


def test_absolute_uri(tmp_path):
    assert absolute_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    assert absolute_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert absolute_uri("mlruns", tmp_path) == str(tmp_path / "mlruns")
    for uri in ("http://host:5000", "https://host", "postgresql://u@h/db", "databricks"):
        assert absolute_uri(uri, tmp_path) == uri


def test_anchor_makes_paths_absolute_and_the_store_explicit(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    config = {"paths": {"root": ".vlm_sweeps", "cache_dir": ".vlm_sweeps/cache", "data_root": "/data",
                        "models_dir": None},
              "tracking": {"uri": None, "experiment": "e"}}
    out = anchor(config, tmp_path)
    assert out["paths"] == {"root": str(tmp_path / ".vlm_sweeps"), "cache_dir": str(tmp_path / ".vlm_sweeps/cache"),
                            "data_root": "/data", "models_dir": None}
    assert out["tracking"]["uri"] == f"sqlite:///{tmp_path}/mlflow.db"
    assert config["paths"]["root"] == ".vlm_sweeps"  # the input is left alone
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert anchor(config, tmp_path)["tracking"]["uri"] == "http://tracker:5000"


def test_frozen_job_is_self_contained(hydra_loader, tmp_path):
    """What a job receives: plain containers with absolute paths, its signature as vlm_sweeps
    computes it, and nothing that points back at the YAML files."""
    import pickle

    from vlm_sweeps import identity

    loader, master = hydra_loader
    job = freeze(Composer(loader), master, ["encoder=siglip", "paths.root=rel"], 3, tmp_path)
    assert job.config["paths"]["root"] == str(tmp_path / "rel")
    assert job.config["paths"]["cache_dir"] == str(tmp_path / "rel" / "cache")
    assert job.config["tracking"]["uri"].startswith("sqlite:////")
    assert job.signature == identity.signature(OmegaConf.create(job.config))
    assert job.axes["encoder"] == "siglip" and "hydra" not in job.config
    assert job.job_dir.name == "3"
    text = pickle.dumps(job.config)
    assert b"${" not in text and b".yaml" not in text
