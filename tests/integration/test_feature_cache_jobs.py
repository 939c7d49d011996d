"""The frozen-feature cache in jobs: results equal with it on or off, and its features are reused
across epochs and across the runs of a sweep (other LLMs, same frozen encoder)."""

from __future__ import annotations

import re

from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import naming
from vlm_sweeps.job import run_job

JOB = SMALL + ["epochs=2", "run.log_every=1"]


def _stats(client, run_id: str, stage: str = "finetune") -> dict[str, int]:
    tag = client.get_run(run_id).data.tags[f"{naming.TAG_FEATURE_CACHE}.{stage}"]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", tag)}


def _curve(client, run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, naming.TRAIN_LOSS))


def test_results_are_equal_with_and_without_the_cache_and_features_are_reused(tmp_path, clean_env):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(uri)

    def job(*extra, root="cached"):
        return run_job(compose(JOB + [f"tracking.uri={uri}", *extra], root=tmp_path / root))

    off = job("run.feature_cache=false", "tracking.experiment=off", root="off")
    on = job("tracking.experiment=on")
    assert on.signature == off.signature  # the switch does not change what a job is
    assert on.metrics and on.metrics == off.metrics  # equal, not merely close
    assert _curve(client, on.run_id) == _curve(client, off.run_id)
    assert f"{naming.TAG_FEATURE_CACHE}.finetune" not in client.get_run(off.run_id).data.tags

    first = _stats(client, on.run_id)
    assert first["misses"] == first["written"] > 0  # epoch 1 computed every image once ...
    assert first["hits"] >= first["misses"]  # ... epoch 2 read them all back

    # another run of the sweep (another LLM, same frozen encoder and resize) reads every image's
    # features from the cache, and still equals its uncached twin
    mistral = job("llm=mistral", "tracking.experiment=on")
    again = _stats(client, mistral.run_id)
    assert again["misses"] == again["written"] == 0 and again["hits"] == first["hits"] + first["misses"]
    evaluation = _stats(client, on.run_id, "eval"), _stats(client, mistral.run_id, "eval")
    assert evaluation[0]["written"] > 0 and evaluation[1]["hits"] > 0 and evaluation[1]["misses"] == 0
    mistral_off = job("llm=mistral", "run.feature_cache=false", "tracking.experiment=off", root="off")
    assert mistral.metrics == mistral_off.metrics
    assert _curve(client, mistral.run_id) == _curve(client, mistral_off.run_id)


def test_a_trained_encoder_uses_no_cache(tmp_path, clean_env):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    result = run_job(compose(SMALL + ["optimization=full_finetune", f"tracking.uri={uri}"], root=tmp_path))
    tags = MlflowClient(uri).get_run(result.run_id).data.tags
    assert f"{naming.TAG_FEATURE_CACHE}.finetune" not in tags
    assert not (tmp_path / "cache" / "features").exists()
