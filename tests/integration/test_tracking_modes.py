"""`tracking.process`: a job tracked from a process of its own (the default) and one tracked from
its own process log the same run: same params, tags, metrics and training curve."""

from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, compose, seed_store
from vlm_sweeps import naming
from vlm_sweeps.job import run_job

VOLATILE = {"mlflow.runName", "mlflow.user", "mlflow.source.name", "mlflow.source.type", naming.TAG_GIT_COMMIT,
            naming.TAG_HEARTBEAT, naming.TAG_PID}  # the heartbeat is a time; the pid the process's


def test_a_job_logs_the_same_run_with_or_without_its_tracking_process(tmp_path, clean_env):
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(uri)
    results = {mode: run_job(compose(SMALL + ["run.log_every=1", f"tracking.uri={uri}", f"tracking.process={mode}",
                                              f"tracking.experiment={mode}"], root=tmp_path / mode))
               for mode in ("true", "false")}
    runs = {mode: client.get_run(r.run_id) for mode, r in results.items()}
    assert results["true"].signature == results["false"].signature
    assert results["true"].metrics == results["false"].metrics and results["true"].metrics
    for mode, run in runs.items():
        assert run.info.status == "FINISHED", mode
    params = {mode: {k: v for k, v in run.data.params.items() if not k.startswith(("paths.", "tracking."))}
              for mode, run in runs.items()}
    assert params["true"] == params["false"] and "encoder" in params["true"]
    assert runs["true"].data.params["tracking.process"] == "True"
    tags = {mode: {k: v for k, v in run.data.tags.items() if k not in VOLATILE} for mode, run in runs.items()}
    assert tags["true"].keys() == tags["false"].keys()
    assert {k: v for k, v in tags["true"].items() if not k.startswith(naming.TAG_FEATURE_CACHE)} == \
           {k: v for k, v in tags["false"].items() if not k.startswith(naming.TAG_FEATURE_CACHE)}
    curves = {mode: [(m.step, m.value) for m in sorted(client.get_metric_history(r.run_id, naming.TRAIN_LOSS),
                                                        key=lambda m: m.step)] for mode, r in results.items()}
    assert curves["true"] == curves["false"] and len(curves["true"]) >= 5
    assert runs["true"].data.metrics.keys() == runs["false"].data.metrics.keys()
