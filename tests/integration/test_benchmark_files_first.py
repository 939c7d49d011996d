"""Benchmark files are checked with the other inputs, before a run opens: a suite whose files are
not under the data root stops the job at once (one error naming every missing file and the fix),
not after training; with eval.continue_on_missing=true the job warns what it will skip, trains, and
ends without a traceback."""

from __future__ import annotations

import logging

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose
from tests.integration.conftest import run_cli
from vlm_sweeps import naming
from vlm_sweeps.eval.paper import PAPER_BENCHMARKS
from vlm_sweeps.job import run_job

pytestmark = pytest.mark.integration

JOB = SMALL + ["data.synthetic.n_finetune=32", "benchmarks=paper"]


def _job_runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_missing_benchmark_files_stop_the_job_before_a_run_opens(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli(["-m", "vlm_sweeps.run", *JOB, f"paths.data_root={empty}", f"tracking.uri={uri}",
                   f"paths.root={tmp_path / 'root'}"], tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr
    assert f"{len(PAPER_BENCHMARKS)} of {len(PAPER_BENCHMARKS)} benchmarks of the suite lack files" in out.stderr
    for name in PAPER_BENCHMARKS:  # each one's missing file, with what to download
        assert f"benchmark '{name}': missing {empty}" in out.stderr, name
    assert "eval.continue_on_missing=true" in out.stderr and "nothing was trained" in out.stderr
    assert _job_runs(uri) == []  # no run opened, none left FAILED
    assert not list((tmp_path / "root").glob("runs/*/checkpoint.pt"))


def test_continue_on_missing_warns_first_then_trains_and_ends_cleanly(tmp_path, clean_env, caplog):
    empty = tmp_path / "data"
    empty.mkdir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose(JOB + [f"paths.data_root={empty}", f"tracking.uri={uri}", "eval.continue_on_missing=true"],
                  root=tmp_path / "root")
    with caplog.at_level(logging.WARNING):
        result = run_job(cfg)
    warnings = [r.getMessage() for r in caplog.records if "continue_on_missing" in r.getMessage()]
    assert warnings and f"skip {len(PAPER_BENCHMARKS)} of {len(PAPER_BENCHMARKS)} benchmarks" in warnings[0]
    assert all(f"benchmark '{name}': missing" in warnings[0] for name in PAPER_BENCHMARKS)
    (run,) = _job_runs(uri)
    assert run.info.status == "FINISHED" and run.info.run_id == result.run_id
    assert run.data.tags[naming.TAG_SKIPPED_BENCHMARKS].split(",") == list(PAPER_BENCHMARKS)
    assert naming.TRAIN_LOSS in run.data.metrics  # it trained
    assert (tmp_path / "root" / "runs" / result.signature / "checkpoint.pt").is_file()  # to evaluate later
    # the same job again, files still missing: a skip, not an evaluation that fails
    again = run_job(cfg)
    assert again.skipped and again.run_id == result.run_id and not again.evaluated
