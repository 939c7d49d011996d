"""Tokenized records in jobs: the first job of a sweep tokenizes and saves them, a later job with the
same LLM (another resize strategy here) reads them, and ends exactly as if it had tokenized itself."""

import logging

from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import naming
from vlm_sweeps.job import run_job

JOB = SMALL + ["run.log_every=1"]


def test_a_later_job_reads_the_tokens_and_equals_one_that_tokenized(tmp_path, clean_env, caplog):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(uri)

    def job(*extra, root="shared"):
        return run_job(compose(JOB + [f"tracking.uri={uri}", *extra], root=tmp_path / root))

    job("tracking.experiment=first")
    assert list((tmp_path / "shared" / "cache" / "tokens").glob("*.pt"))  # saved after its first epoch
    with caplog.at_level(logging.INFO, logger="vlm_sweeps.job"):
        reads = job("resize=naive", "tracking.experiment=reads")
    assert "tokenized records read from" in caplog.text
    own = job("resize=naive", "run.token_cache=false", "tracking.experiment=own", root="own")
    assert reads.signature == own.signature and reads.metrics == own.metrics and reads.metrics
    curve = {r.run_id: [(m.step, m.value) for m in client.get_metric_history(r.run_id, naming.TRAIN_LOSS)]
             for r in (reads, own)}
    assert curve[reads.run_id] == curve[own.run_id]
