"""A real MLflow sqlite store, created once per session, and a helper filling it with sweeps.

Runs are shaped as the jobs write them (see vlm_sweeps/naming.py): a sweep parent run, job runs
tagged kind/signature/sweep id/parentRunId, axis params plus the dotted flattened config,
benchmark metrics (headline and secondary), training curves. Each test uses its own experiment.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from typing import Callable

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from vlm_sweeps import naming

DEFAULTS = {"encoder": "clip", "resize": "letterbox", "optimization": "single_stage",
            "llm": "llama2", "epochs": "1.0", "data": "synthetic", "scale": "tiny"}
BENCHMARKS = ("synth_vqa", "synth_ref", "synth_pope")


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tracking URI, artifact root) of one sqlite store shared by the session's tests."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # creates the schema once (takes seconds)
    return uri, str(root / "artifacts")


def _log_run(client: MlflowClient, exp: str, config: dict, scores: dict[str, float],
             tags: dict[str, str], status: str = "FINISHED") -> str:
    run = client.create_run(exp, tags={naming.TAG_KIND: naming.KIND_JOB, **tags})
    rid, now = run.info.run_id, int(time.time() * 1000)
    params = [Param(k, str(v)) for k, v in config.items()]
    params += [Param("encoder.image_size", "32"), Param("optimizer.lr", "2e-5")]  # dotted: ignored
    metrics = [Metric(naming.headline_metric(b), v, now, 0) for b, v in scores.items()]
    metrics += [Metric("synth_pope/f1", 0.123, now, 0), Metric(naming.TRAIN_LR, 1e-3, now, 0)]
    metrics += [Metric(naming.TRAIN_LOSS, 3.0 - s, now, s) for s in range(3)]
    client.log_batch(rid, metrics=metrics, params=params)
    client.set_terminated(rid, status)
    return rid


def fill_sweep(store: tuple[str, str], grid: dict[str, list[str]], seeds: list[int],
               score: Callable[[dict], dict[str, float]], extras: bool = True,
               experiment: str | None = None) -> tuple[str, str, str]:
    """Log one sweep over `grid` x `seeds` into a new experiment; returns (experiment name,
    sweep id, parent run id). `score(config)` gives fractions per benchmark. With `extras`, a
    FAILED and a RUNNING job with an unseen encoder, and a duplicate of the first job's
    signature (older, different scores) are added: none of them may change the analysis."""
    uri, artifacts = store
    client = MlflowClient(uri)
    name = experiment or f"exp-{uuid.uuid4().hex[:8]}"
    exp = client.create_experiment(name, artifact_location=f"{artifacts}/{name}")
    sweep_id = uuid.uuid4().hex[:6]
    parent = client.create_run(exp, tags={naming.TAG_KIND: naming.KIND_SWEEP,
                                          naming.TAG_SWEEP_ID: sweep_id}).info.run_id
    tags = {naming.TAG_SWEEP_ID: sweep_id, "mlflow.parentRunId": parent}
    axes = list(grid)
    configs = [dict(DEFAULTS, **dict(zip(axes, values)), seed=str(seed))
               for values in itertools.product(*grid.values()) for seed in seeds]
    first_sig = None
    for i, config in enumerate(configs):
        sig = hashlib.sha1(repr(sorted(config.items())).encode()).hexdigest()[:12]
        if i == 0 and extras:  # an older run of the same configuration: superseded
            wrong = {b: 0.0 for b in score(config)}
            _log_run(client, exp, config, wrong, {**tags, naming.TAG_SIGNATURE: sig})
            time.sleep(0.002)
        first_sig = first_sig or sig
        _log_run(client, exp, config, score(config), {**tags, naming.TAG_SIGNATURE: sig})
    if extras:
        odd = dict(configs[0], encoder="never_finished")
        for status in ("FAILED", "RUNNING"):
            _log_run(client, exp, odd, {b: 0.99 for b in BENCHMARKS},
                     {**tags, naming.TAG_SIGNATURE: status}, status=status)
    client.set_terminated(parent)
    return name, sweep_id, parent


ENCODER_GAIN = {"clip": 0.0, "siglip": 0.05, "dinosiglip": 0.10}
RESIZE_GAIN = {"naive": 0.02, "letterbox": 0.0}


def additive_scores(config: dict) -> dict[str, float]:
    """Scores with known effects: encoder adds ENCODER_GAIN (synth_vqa: 40% + gain), resize
    naive adds 2 points, the seed adds 0.1 point per seed number."""
    base = ENCODER_GAIN[config["encoder"]] + RESIZE_GAIN.get(config["resize"], 0.0)
    noise = 0.001 * int(config["seed"])
    return {"synth_vqa": 0.40 + base + noise, "synth_ref": 0.20 + 2 * base + noise,
            "synth_pope": 0.60 + base / 2 - noise}


@pytest.fixture
def make_sweep(store):
    """A factory: `make_sweep(grid, seeds[, score], extras=...)` -> (experiment, sweep id,
    parent run id); `score` defaults to `additive_scores`."""
    return lambda grid, seeds, score=additive_scores, **kw: fill_sweep(store, grid, seeds,
                                                                        score, **kw)


@pytest.fixture(scope="session")
def encoder_resize(store):
    """encoder (clip, siglip, dinosiglip) x resize (letterbox, naive) x seeds 0, 1 with
    `additive_scores`, plus a FAILED and a RUNNING job and a superseded duplicate."""
    grid = {"encoder": ["clip", "siglip", "dinosiglip"], "resize": ["letterbox", "naive"]}
    return fill_sweep(store, grid, [0, 1], additive_scores)
