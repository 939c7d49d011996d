"""Evaluation end to end: benchmark files in their real formats -> loaders -> a real tiny model ->
scorers; missing files stop the suite or are skipped; cached predictions make re-scoring free;
`python -m vlm_sweeps.evaluate` re-evaluates a finished job and logs into its run."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SMALL, compose
from vlm_sweeps import naming
from vlm_sweeps.eval import registry
from vlm_sweeps.eval.cache import PredictionCache
from vlm_sweeps.eval.families.files import MissingBenchmarkFile
from vlm_sweeps.eval.harness import Answerer
from vlm_sweeps.eval.paper import PAPER_BENCHMARKS
from vlm_sweeps.eval.suite import run_suite


@pytest.fixture(scope="module")
def answerer(small_world, session_root) -> Answerer:
    """The default tiny model (random weights: what matters here is that every stage runs)."""
    from vlm_sweeps.models.builder import build_vlm, image_transforms
    from vlm_sweeps.models.prompts import get_format

    world, tok = small_world
    cfg = compose(SMALL, root=session_root)
    torch.manual_seed(0)
    model = build_vlm(cfg, tok).eval()
    return Answerer(model, tok, get_format(cfg.llm.prompt), image_transforms(cfg, model), torch.device("cpu"))


class Forwards:
    """Counts LLM forward passes: every generated token and every closed-set scoring is one."""

    def __init__(self, answerer: Answerer):
        self.n = 0
        self.handle = answerer.model.llm.register_forward_hook(self._hook)

    def _hook(self, *args) -> None:
        self.n += 1

    def __enter__(self) -> "Forwards":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def suite(answerer: Answerer, names, root: Path, **kwargs):
    options = dict(world_dir=None, data_root=root, max_examples=None, batch_size=4, seed=7)
    return run_suite(answerer, list(names), **{**options, **kwargs})


def test_every_paper_benchmark_runs_from_its_files_through_the_model_to_its_metrics(answerer, paper_root):
    result = suite(answerer, PAPER_BENCHMARKS, paper_root)
    for name in PAPER_BENCHMARKS:
        examples = registry.get(name).load(registry.LoadContext(paper_root))
        rows = result.predictions[name]
        assert [r["qid"] for r in rows] == [ex.qid for ex in examples], name
        for ex, row in zip(examples, rows):
            if ex.mode == "closed_set":
                assert row["prediction"] in ex.choices, name  # chosen by likelihood, never free text
        assert 0.0 <= result.metrics[naming.headline_metric(name)] <= 1.0, name
        assert result.generated[name] == len(examples)
    assert not result.skipped
    # batching does not change an answer: the whole suite again, one example at a time
    single = suite(answerer, PAPER_BENCHMARKS, paper_root, batch_size=1)
    assert single.predictions == result.predictions and single.metrics == result.metrics


def oracle(ex) -> str:
    """The answer a perfect model would give, written the way the model is asked to write it."""
    if ex.box is not None:
        return "[" + ", ".join(f"{v:.3f}" for v in ex.box) + "]"
    if ex.mode == "closed_set":
        return next(c for c in ex.choices if c.lower() == ex.answers[0].lower())
    return Counter(ex.answers).most_common(1)[0][0]


def test_a_perfect_model_scores_one_on_every_headline_metric(answerer, paper_root, monkeypatch):
    monkeypatch.setattr(answerer, "answer", lambda examples, *a, **k: [oracle(ex) for ex in examples])
    result = suite(answerer, PAPER_BENCHMARKS, paper_root)
    assert {name: result.metrics[naming.headline_metric(name)] for name in PAPER_BENCHMARKS} == \
        {name: 1.0 for name in PAPER_BENCHMARKS}


def test_a_missing_file_stops_the_suite_before_any_generation_unless_asked_to_continue(answerer, tmp_path, writers):
    writers["vqav2"](tmp_path)
    writers["pope"](tmp_path)
    with Forwards(answerer) as forwards, pytest.raises(MissingBenchmarkFile) as err:
        suite(answerer, ["vqav2", "gqa", "pope"], tmp_path)
    assert err.value.benchmark == "gqa" and "testdev_balanced_questions.json" in str(err.value)
    assert forwards.n == 0  # failed while loading, not after evaluating vqav2

    result = suite(answerer, ["vqav2", "gqa", "pope"], tmp_path, continue_on_missing=True)
    assert set(result.predictions) == {"vqav2", "pope"}
    assert list(result.skipped) == ["gqa"] and "testdev_balanced_questions.json" in result.skipped["gqa"]
    assert "vqav2/accuracy" in result.metrics and not any(k.startswith("gqa/") for k in result.metrics)

    with pytest.raises(FileNotFoundError, match="no benchmark of the suite could be loaded"):
        suite(answerer, ["gqa", "ai2d"], tmp_path, continue_on_missing=True)


def test_cached_predictions_make_rescoring_free(answerer, paper_root, tmp_path, monkeypatch):
    cache = PredictionCache(tmp_path)
    names = ["vqav2", "refcoco", "pope"]
    with Forwards(answerer) as forwards:
        first = suite(answerer, names, paper_root, cache=cache, model_key="sig-weights")
    assert forwards.n > 0 and sum(first.generated.values()) == sum(len(r) for r in first.predictions.values())

    # a fixed scorer / an added metric: scored again from the cache, the model is not run
    vqav2 = registry.get("vqav2")
    rescored = dataclasses.replace(vqav2, score=lambda ex, preds: {**vqav2.score(ex, preds), "answered": 1.0})
    monkeypatch.setitem(registry._REGISTRY, "vqav2", rescored)
    with Forwards(answerer) as forwards:
        second = suite(answerer, names, paper_root, cache=cache, model_key="sig-weights")
    assert forwards.n == 0 and sum(second.generated.values()) == 0
    assert second.predictions == first.predictions
    assert second.metrics == {**first.metrics, "vqav2/answered": 1.0}

    # a slim subset is answered from the full set's predictions
    with Forwards(answerer) as forwards:
        slim = suite(answerer, names, paper_root, cache=cache, model_key="sig-weights", max_examples=1)
    assert forwards.n == 0 and all(len(rows) == (3 if name == "pope" else 1) for name, rows in slim.predictions.items())

    # another model, or the blind control, is another key: answered by the model
    with Forwards(answerer) as forwards:
        suite(answerer, ["vqav2"], paper_root, cache=cache, model_key="sig-other-weights")
    assert forwards.n > 0
    answerer.blind = True
    try:
        with Forwards(answerer) as forwards:
            suite(answerer, ["pope"], paper_root, cache=cache, model_key="sig-weights")
    finally:
        answerer.blind = False
    assert forwards.n > 0
    files = sorted(p.relative_to(tmp_path).parts[:2] for p in tmp_path.rglob("*.jsonl"))
    assert files == [("predictions", "sig-other-weights")] + [("predictions", "sig-weights")] * 4


def test_a_job_keys_its_cache_by_signature_and_weights_unless_disabled(answerer, session_root):
    from vlm_sweeps.eval.cache import job_cache, model_key
    from vlm_sweeps.train.checkpoint import trained_state

    cache, key = job_cache(compose(SMALL, root=session_root), answerer.model, "abc123")
    assert cache.root == (session_root / "cache" / "predictions").resolve()
    assert key == model_key("abc123", trained_state(answerer.model, {"projector", "llm"}))  # single_stage trains both
    assert job_cache(compose(SMALL + ["eval.cache=false"]), answerer.model, "abc123") == (None, None)


# --- python -m vlm_sweeps.evaluate on a finished job -------------------------------------------------

JOB_SUITE = "benchmarks.suite=[synth_vqa,synth_pope]"


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory):
    """A tiny job (SMALL settings) run to the end: (root, tracking uri, JobResult, its predictions)."""
    from mlflow.tracking import MlflowClient

    from vlm_sweeps.job import run_job

    root = tmp_path_factory.mktemp("evaluate_job")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    saved = {k: os.environ.pop(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID") if k in os.environ}
    try:
        result = run_job(compose(SMALL + [JOB_SUITE, f"tracking.uri={uri}"], root=root / "jobs"))
    finally:
        os.environ.update(saved)
    client = MlflowClient(uri)
    predictions = {name: client.download_artifacts(result.run_id, f"predictions/{name}.jsonl", str(root / name))
                   for name in ("synth_vqa", "synth_pope")}
    return root, uri, result, {k: Path(v).read_text() for k, v in predictions.items()}


def evaluate_args(finished_job, *extra: str) -> list[str]:
    root, uri, result, _ = finished_job
    return [f"eval.run_id={result.run_id}", f"tracking.uri={uri}", f"paths.root={root / 'jobs'}", *extra]


@pytest.mark.integration
def test_cli_evaluates_a_finished_run_without_retraining_and_logs_into_it(finished_job, tmp_path):
    from mlflow.tracking import MlflowClient

    root, uri, job, job_predictions = finished_job
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    args = evaluate_args(finished_job, "benchmarks.suite=[synth_vqa,synth_pope,synth_count]", "run.progress=false")
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.evaluate", *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert f"run {job.run_id}: " in out.stdout and " of 36 examples generated" in out.stdout

    client = MlflowClient(uri)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED" and len(client.search_runs([run.info.experiment_id])) == 1
    # the checkpoint's weights give the job's own answers and figures...
    for name in ("synth_vqa", "synth_pope"):
        logged = Path(client.download_artifacts(job.run_id, f"predictions/{name}.jsonl", str(tmp_path)))
        assert logged.read_text() == job_predictions[name], name
    for key, value in job.metrics.items():
        assert run.data.metrics[key] == value, key
    # ...without duplicating them in the metric's history, and the new benchmark joins at the same step
    history = client.get_metric_history(job.run_id, "synth_pope/accuracy")
    assert len(history) == 1
    assert client.get_metric_history(job.run_id, "synth_count/accuracy")[0].step == history[0].step
    assert "synth_count/accuracy" in out.stdout
    # each benchmark's evaluation setting, as a job's evaluation records it (what analysis compares)
    from vlm_sweeps.eval import settings as eval_settings

    setting = eval_settings.decode(run.data.tags[eval_settings.tag("synth_count", False)])
    assert setting["n"] == 12 and setting["blind"] is False
    assert setting["score"] == run.data.metrics["synth_count/accuracy"]


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_blind_control_logs_under_its_own_names_and_reuses_cached_predictions(finished_job):
    from mlflow.tracking import MlflowClient

    from vlm_sweeps.evaluate import evaluate_run

    root, uri, job, _ = finished_job
    blind = evaluate_run(compose(evaluate_args(finished_job, JOB_SUITE, "eval.blind=true", "run.progress=false")))
    assert set(blind.metrics) == {"blind/" + k for k in job.metrics}
    run = MlflowClient(uri).get_run(job.run_id)
    for key, value in job.metrics.items():
        assert run.data.metrics[key] == value and run.data.metrics["blind/" + key] == blind.metrics["blind/" + key]
    again = evaluate_run(compose(evaluate_args(finished_job, JOB_SUITE, "eval.blind=true", "run.progress=false")))
    assert again.generated == 0 and again.total == 24 and again.metrics == blind.metrics

    # the cache's files: one folder per model (signature + weights digest), a header naming the key
    from vlm_sweeps.eval.cache import model_key

    weights = torch.load(root / "jobs" / "runs" / job.signature / "checkpoint.pt", weights_only=True)["model"]
    files = list((root / "jobs" / "cache" / "predictions").rglob("synth_pope.*.jsonl"))
    assert files and {f.parent.name for f in files} == {model_key(job.signature, weights)}
    headers = [json.loads(f.read_text().splitlines()[0])["key"] for f in files]
    assert {"benchmark": "synth_pope", "blind": True} in [{k: h[k] for k in ("benchmark", "blind")} for h in headers]


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_evaluate_skips_missing_benchmarks_when_asked_and_tags_them(finished_job, tmp_path):
    from mlflow.tracking import MlflowClient

    from vlm_sweeps.evaluate import EvaluateError, evaluate_run

    root, uri, job, _ = finished_job
    args = evaluate_args(finished_job, "benchmarks.suite=[synth_pope,gqa]", f"paths.data_root={tmp_path}")
    with pytest.raises(EvaluateError, match="benchmark 'gqa': missing .*continue_on_missing=true"):
        evaluate_run(compose(args))
    out = evaluate_run(compose(args + ["eval.continue_on_missing=true"]))
    assert list(out.skipped) == ["gqa"] and set(out.metrics) == {k for k in job.metrics if k.startswith("synth_pope/")}
    tags = MlflowClient(uri).get_run(job.run_id).data.tags
    assert tags[naming.TAG_PREFIX + "skipped_benchmarks"] == "gqa"


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_evaluate_says_what_is_wrong(finished_job, tmp_path):
    from vlm_sweeps.evaluate import EvaluateError, evaluate_run

    root, uri, job, _ = finished_job
    with pytest.raises(EvaluateError, match="eval.run_id=<MLflow run id> or eval.checkpoint="):
        evaluate_run(compose([f"tracking.uri={uri}"]))
    with pytest.raises(EvaluateError, match="unknown run id 'nope'"):
        evaluate_run(compose(["eval.run_id=nope", f"tracking.uri={uri}"]))
    with pytest.raises(EvaluateError, match="unknown benchmark 'nope'"):
        evaluate_run(compose(evaluate_args(finished_job, "benchmarks.suite=[nope]")))
    checkpoint = root / "jobs" / "runs" / job.signature / "checkpoint.pt"
    checkpoint.rename(tmp_path / "away.pt")
    try:
        with pytest.raises(EvaluateError, match=f"run {job.run_id} \\(signature {job.signature}\\) has no checkpoint"):
            evaluate_run(compose(evaluate_args(finished_job)))
    finally:
        (tmp_path / "away.pt").rename(checkpoint)

    # a checkpoint whose weights do not fit the model the run's config builds
    state = torch.load(checkpoint, weights_only=True)
    name = next(k for k in state["model"] if k.startswith("projector."))
    state["model"][name] = state["model"][name][:1]
    state["model"]["projector.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(EvaluateError, match="does not match the config .*unexpected keys.*shape mismatches"):
        evaluate_run(compose(evaluate_args(finished_job, f"eval.checkpoint={tmp_path / 'other.pt'}")))


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_a_checkpoint_alone_names_its_run(finished_job):
    from vlm_sweeps.evaluate import evaluate_run

    root, uri, job, _ = finished_job
    checkpoint = root / "jobs" / "runs" / job.signature / "checkpoint.pt"
    out = evaluate_run(compose([f"eval.checkpoint={checkpoint}", f"tracking.uri={uri}", f"paths.root={root / 'jobs'}",
                                "benchmarks.suite=[synth_pope]", "run.progress=false"]))
    assert out.run_id == job.run_id and out.metrics["synth_pope/accuracy"] == job.metrics["synth_pope/accuracy"]

