"""A job against a real `mlflow server` that goes away: an unreachable server is one `error:` line
before any run is opened; a server killed by its PID while the job trains ends the job within two
minutes of the kill (not hours of retried writes), with a message that names the lost writes; the
re-run resumes the same run and re-logs what was lost, each point once, with the first attempt's
time beside the resume's. The server's password, given in the URI, appears in no log of either
attempt (MLflow gets it through MLFLOW_TRACKING_PASSWORD, not inside a URI it prints)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SMALL, MlflowServer, free_port
from tests.integration.conftest import job_runs, popen, run_cli, wait_for_training
from vlm_sweeps import naming

pytestmark = pytest.mark.integration

PASSWORD = "S3cretPassw0rd"


def test_an_unreachable_server_is_one_error_line_and_no_run(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    out = run_cli(["-m", "vlm_sweeps.run", *SMALL, "tracking=server", f"tracking.uri={uri}",
                   f"paths.root={tmp_path / 'root'}"], tmp_path)
    elapsed = time.monotonic() - started
    assert out.returncode == 1, out.stderr[-3000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"tracking server {uri} does not answer" in errors[0], out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "root" / "runs").exists() or not any((tmp_path / "root" / "runs").rglob("checkpoint.pt"))
    assert elapsed < 90, elapsed  # imports and the probe; MLflow's own retries alone took 4 min 19 s


def test_a_server_killed_for_good_ends_the_job_fast_and_the_resume_restores_the_run(tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    secret_uri = f"http://alice:{PASSWORD}@127.0.0.1:{server.port}"
    args = [*SMALL, "tracking=server", f"tracking.uri={secret_uri}", f"paths.root={tmp_path / 'root'}",
            "data.synthetic.n_finetune=400", "run.checkpoint_every=2", "run.log_every=1", "tracking.heartbeat_s=1"]
    proc = popen(args, tmp_path)
    try:
        run_id = wait_for_training(server.uri, proc, tmp_path / "root" / "runs")
        server.kill()
        killed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=240)
        ended = time.monotonic() - killed
    finally:
        proc.kill()
    print(f"the job ended {ended:.1f} s after its tracking server was killed")
    assert ended < 120, f"the job ended {ended:.0f} s after its tracking server died"
    assert proc.returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    # the lost write, what was not attempted after it (when the job sent more before hearing of it), what to do
    assert "a write to the tracking store failed" in errors[0], errors[0]
    assert f"run {run_id}" in errors[0] and "re-run the same command" in errors[0], errors[0]

    server.start()  # back, on the same database: the re-run resumes the run from its checkpoint
    again = run_cli(["-m", "vlm_sweeps.run", *args], tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    (run,) = job_runs(server.uri)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert int(run.data.tags[naming.TAG_PREFIX + "resumes"]) == 1
    client = MlflowClient(server.uri)
    total = int(run.data.tags[naming.TAG_TOTAL_STEPS])
    for key in (naming.TRAIN_LOSS, naming.TRAIN_LR):  # every step once: the lost ones logged again
        steps = Counter(m.step for m in client.get_metric_history(run_id, key))
        assert sorted(steps) == list(range(1, total + 1)) and set(steps.values()) == {1}, (key, steps)
    scores = [k for k in run.data.metrics if not k.startswith(("train/", "time/"))]
    assert scores
    for key in scores:
        assert [m.step for m in client.get_metric_history(run_id, key)] == [total], key
    metrics = run.data.metrics
    assert metrics["time/job_s"] > metrics["time/this_attempt/job_s"] > 0  # both attempts' time, and the resume's
    assert metrics["time/train_finetune_s"] > metrics["time/this_attempt/train_finetune_s"]

    logs = stdout + stderr + again.stdout + again.stderr
    logs += "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*")
                    if p.is_file() and p.suffix in (".log", ".yaml", ".txt", ".json") and "server" not in p.parts)
    assert "127.0.0.1" in logs and PASSWORD not in logs
    tags_and_params = " ".join([*run.data.tags.values(), *run.data.params.values()])
    assert PASSWORD not in tags_and_params
    server.kill()
