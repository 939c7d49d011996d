"""Losing no work: a job that fails mid-training is FAILED in MLflow with its message; running it
again resumes from the checkpoint into the same MLflow run and ends with exactly the metrics of a
run that was never interrupted."""

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import naming
from vlm_sweeps.job import run_job

# two_stage: the interruption lands in the second stage, so stage bookkeeping is exercised too
JOB = SMALL + ["optimization=two_stage", "run.checkpoint_every=2", "run.log_every=1"]


def test_failed_job_is_marked_failed_then_resumes_to_identical_metrics(tmp_path, clean_env):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    reference = run_job(compose(JOB + [f"tracking.uri={uri}"], root=tmp_path / "a"))

    interrupted_root = tmp_path / "b"
    with pytest.raises(RuntimeError, match="injected failure at step 5"):
        run_job(compose(JOB + [f"tracking.uri={uri}", "run.fail_at_step=5", "tracking.experiment=resume"],
                        root=interrupted_root))
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("resume")
    (failed,) = client.search_runs([exp.experiment_id])
    assert failed.info.status == "FAILED"
    assert "injected failure at step 5" in failed.data.tags[naming.TAG_ERROR]
    assert int(failed.data.tags[naming.TAG_TOTAL_STEPS]) > 5

    resumed = run_job(compose(JOB + [f"tracking.uri={uri}", "tracking.experiment=resume"], root=interrupted_root))
    assert resumed.run_id == failed.info.run_id  # the same MLflow run, continued
    assert client.get_run(resumed.run_id).info.status == "FINISHED"
    assert client.get_run(resumed.run_id).data.tags[naming.TAG_PREFIX + "resumes"] == "1"
    assert resumed.signature == reference.signature
    assert resumed.metrics == pytest.approx(reference.metrics, abs=1e-6)
    assert resumed.metrics  # not vacuous
    # it continued from the last checkpoint before the failure (step 4; checkpoints every 2 steps)
    # rather than starting over, and every step of the curve is there exactly once
    assert client.get_run(resumed.run_id).data.tags[naming.TAG_PREFIX + "resumed_from_step"] == "4"
    steps = [m.step for m in client.get_metric_history(resumed.run_id, naming.TRAIN_LOSS)]
    ref_steps = [m.step for m in client.get_metric_history(reference.run_id, naming.TRAIN_LOSS)]
    assert sorted(steps) == sorted(ref_steps) and len(steps) == len(set(steps))

    # and once finished, the same job is skipped
    again = run_job(compose(JOB + [f"tracking.uri={uri}", "tracking.experiment=resume"], root=interrupted_root))
    assert again.skipped and again.run_id == resumed.run_id


def test_a_checkpoint_from_another_store_is_kept_aside_not_deleted(tmp_path, clean_env):
    root = tmp_path / "root"
    first = run_job(compose(SMALL + [f"tracking.uri=sqlite:///{seed_store(tmp_path / 'a.db')}"], root=root))
    ckpt_dir = root / "runs" / first.signature
    assert (ckpt_dir / "checkpoint.pt").is_file()
    # same paths.root, a fresh store: the job runs anew, the first store's model stays on disk
    second = run_job(compose(SMALL + [f"tracking.uri=sqlite:///{seed_store(tmp_path / 'b.db')}"], root=root))
    assert not second.skipped and second.signature == first.signature
    assert (ckpt_dir / f"checkpoint.{first.run_id}.pt").is_file()
    assert (ckpt_dir / "checkpoint.pt").is_file()
