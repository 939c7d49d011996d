"""Evaluation never retrains: after a finished sweep, re-running it with other evaluation settings
trains nothing; a larger suite or the blind control is evaluated on each run's checkpoint and
logged into the same runs; a run whose checkpoint is gone says so and what to do."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import DEFAULT_SUITE, SMALL
from tests.integration.conftest import run_cli
from vlm_sweeps import naming

pytestmark = pytest.mark.integration

SWEEP = ["-m", "vlm_sweeps.run", "-m", "encoder=clip,siglip", *SMALL, "data.synthetic.n_finetune=64"]
FIRST_SUITE = "benchmarks.suite=[synth_vqa,synth_count]"
FULL = DEFAULT_SUITE  # the default suite: the first two and more
ADDED = [b for b in FULL if b not in ("synth_vqa", "synth_count")]


def _state(cwd):
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = 'job'")
    checkpoints = {p: p.stat().st_mtime_ns for p in (cwd / ".vlm_sweeps" / "runs").glob("*/checkpoint.pt")}
    curves = {r.info.run_id: len(client.get_metric_history(r.info.run_id, naming.TRAIN_LOSS)) for r in runs}
    return {r.info.run_id: r for r in runs}, checkpoints, curves


def _ok(result):
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("eval_only")
    _ok(run_cli([*SWEEP, FIRST_SUITE], cwd))
    return cwd


def test_another_batch_size_trains_nothing(finished):
    runs, checkpoints, curves = _state(finished)
    out = _ok(run_cli([*SWEEP, FIRST_SUITE, "benchmarks.batch_size=8"], finished))
    assert out.count("skipped (already finished)") == 2
    after, checkpoints_after, curves_after = _state(finished)
    assert after.keys() == runs.keys() and checkpoints_after == checkpoints and curves_after == curves


def test_a_larger_suite_adds_its_benchmarks_to_the_same_runs_and_trains_nothing(finished):
    runs, checkpoints, curves = _state(finished)
    assert all(naming.headline_metric(ADDED[0]) not in r.data.metrics for r in runs.values())
    out = _ok(run_cli([*SWEEP], finished))  # the default suite
    assert out.count(f"already trained: evaluated {', '.join(ADDED)}") == 2
    after, checkpoints_after, curves_after = _state(finished)
    assert after.keys() == runs.keys() and checkpoints_after == checkpoints and curves_after == curves
    for run_id, run in after.items():
        assert run.info.status == "FINISHED"
        assert all(naming.headline_metric(b) in run.data.metrics for b in FULL)
        # the first two are the first evaluation's, untouched
        for b in ("synth_vqa", "synth_count"):
            assert run.data.metrics[naming.headline_metric(b)] == runs[run_id].data.metrics[naming.headline_metric(b)]
    # and again: nothing left to do
    assert _ok(run_cli([*SWEEP], finished)).count("skipped (already finished)") == 2


def test_the_blind_control_is_logged_into_the_same_runs(finished):
    runs, checkpoints, _ = _state(finished)
    _ok(run_cli([*SWEEP, FIRST_SUITE, "eval.blind=true"], finished))
    after, checkpoints_after, _ = _state(finished)
    assert after.keys() == runs.keys() and checkpoints_after == checkpoints
    for run in after.values():
        assert {"blind/synth_vqa/accuracy", "blind/synth_count/accuracy"} <= set(run.data.metrics)


def test_a_run_whose_checkpoint_is_gone_says_what_to_do(finished):
    runs, checkpoints, _ = _state(finished)
    for path in checkpoints:
        path.unlink()
    result = run_cli([*SWEEP, FIRST_SUITE, "benchmarks.max_examples=4"], finished)
    assert result.returncode == 2
    assert "is FINISHED but lacks synth_vqa, synth_count, and its checkpoint" in result.stderr
    assert "python -m vlm_sweeps.evaluate eval.run_id=" in result.stderr and "mlflow runs delete" in result.stderr
    assert _state(finished)[0].keys() == runs.keys()  # nothing new was started
