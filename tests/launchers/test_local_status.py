"""`python -m launchers status` on a tracking store (local sweeps, single runs): one row per job,
its liveness from the run's heartbeat and pid, and for each dead, interrupted or failed job the
command that resumes it. A real sqlite store, built the way jobs write it; the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launchers import __main__ as cli
from launchers import cluster, manifest, status
from vlm_sweeps import naming

REPO = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()


def _dead_pid() -> int:
    """The pid of a process that ran on this host and is gone (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.kill()
    proc.wait()
    return proc.pid


def _run(client, exp_id: str, signature: str, encoder: str, status_: str, tags: dict[str, str],
         sweep: str = "multirun_a") -> str:
    """A job run as vlm_sweeps.tracking writes it: kind/signature/sweep tags, the axes as params."""
    run = client.create_run(exp_id, tags={naming.TAG_KIND: naming.KIND_JOB, naming.TAG_SIGNATURE: signature,
                                          naming.TAG_SWEEP_ID: sweep, naming.TAG_TOTAL_STEPS: "40", **tags})
    for axis, value in {"encoder": encoder, "resize": "letterbox", "optimization": "single_stage",
                        "llm": "llama2", "epochs": "1.0", "data": "synthetic"}.items():
        client.log_param(run.info.run_id, axis, value)
    client.log_metric(run.info.run_id, naming.TRAIN_LOSS, 1.0, step=10)
    if status_ == "FINISHED":
        client.log_metric(run.info.run_id, "synth_vqa/accuracy", 0.5)
    if status_ != "RUNNING":
        client.set_terminated(run.info.run_id, status_)
    return run.info.run_id


def _command(signature: str) -> str:
    return f"cd /work && python -m vlm_sweeps.run seed={signature}"


@pytest.fixture()
def store(tmp_path):
    """sqlite:///<tmp>/mlflow.db with one job in each state."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(naming.DEFAULT_EXPERIMENT)
    now = time.time()

    def beat(age: float, host: str = "node7", pid: int = 4242) -> dict[str, str]:
        return {naming.TAG_HEARTBEAT: str(round(now - age)), naming.TAG_HEARTBEAT_EVERY: "30",
                naming.TAG_HOST: host, naming.TAG_PID: str(pid), naming.TAG_STATUS: "running"}

    _run(client, exp_id, "live00000000", "clip", "RUNNING", {**beat(5), naming.TAG_COMMAND: _command("live")})
    _run(client, exp_id, "stale0000000", "siglip", "RUNNING",
         {**beat(30 * naming.DEAD_AFTER + 600), naming.TAG_COMMAND: _command("stale")})
    _run(client, exp_id, "killedpid000", "dinov2", "RUNNING",  # fresh heartbeat, but its pid on this host is gone
         {**beat(1, HOST, _dead_pid()), naming.TAG_COMMAND: _command("killedpid")})
    _run(client, exp_id, "failed000000", "in1k", "FAILED",
         {**beat(100), naming.TAG_STATUS: "failed", naming.TAG_ERROR: "FloatingPointError: loss is nan at step 12",
          naming.TAG_COMMAND: _command("failed")})
    _run(client, exp_id, "finished0000", "dinoclip", "FINISHED",
         {**beat(3600), naming.TAG_STATUS: "finished", naming.TAG_COMMAND: _command("finished")})
    _run(client, exp_id, "interrupt000", "dinosiglip", "RUNNING",  # Ctrl-C: RUNNING, heartbeat stopped
         {**beat(3600), naming.TAG_STATUS: "interrupted",
          naming.TAG_COMMAND: "cd /w && python -m vlm_sweeps.run tracking.uri=http://***@h:5000"},
         sweep="multirun_b")
    # an older attempt of the finished job, newer than it: the FINISHED run wins its row
    _run(client, exp_id, "finished0000", "dinoclip", "FAILED", {naming.TAG_ERROR: "old attempt"})
    return uri


def cli_status(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """The real command in a process of its own (one test keeps this path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VLM_SWEEPS_"))}
    env.update(env_extra or {})
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "launchers", "status", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def status_cli(monkeypatch, capsys):
    """`python -m launchers status ARGS` run in this process (its entry function, `launchers.__main__.main`),
    from `cwd`, with the environment `cli_status` gives its process: the same exit code and output."""

    def run(args: list[str], cwd: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
        with monkeypatch.context() as m:
            for name in [k for k in os.environ if k.startswith(("MLFLOW_", "VLM_SWEEPS_"))]:
                m.delenv(name)
            for name, value in (env_extra or {}).items():
                m.setenv(name, value)
            m.chdir(cwd)
            capsys.readouterr()
            code = cli.main(["status", *args])
            out = capsys.readouterr()
        return subprocess.CompletedProcess(["python", "-m", "launchers", "status", *args], code, out.out, out.err)

    return run


def _states(output: str) -> dict[str, str]:
    """{signature: state} read off the table (the lines after its header, until the counts line):
    signature, encoder (the one varying axis), state."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("signature"))
    rows = {}
    for line in lines[start + 1:]:
        if line.split()[0].isdigit():  # "1 running, 2 dead, ..."
            break
        cells = line.split()
        rows[cells[0]] = cells[2]
    return rows


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_the_store_view_tells_dead_runs_from_live_ones(store, tmp_path):
    out = cli_status(["--tracking-uri", store], tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert _states(text) == {"live00000000": "running", "stale0000000": "dead", "killedpid000": "dead",
                             "failed000000": "failed", "finished0000": "finished", "interrupt000": "interrupted"}
    header = next(line for line in text.splitlines() if line.startswith("signature"))
    assert header.split() == ["signature", "encoder", "state", "progress", "heartbeat", "host:pid",
                              "synth_vqa/accuracy"]
    assert "every job: resize=letterbox optimization=single_stage" in text
    live = next(line for line in text.splitlines() if line.startswith("live00000000"))
    assert "10/40 (25%)" in live and "node7:4242" in live and "s ago" in live
    assert "done" in next(line for line in text.splitlines() if line.startswith("finished0000"))
    assert "1 running, 2 dead, 1 interrupted, 1 failed, 1 finished" in text
    # under the table: what went wrong and the command that resumes each stopped job, nothing for the others
    assert f"resume: {_command('stale')}" in text and f"resume: {_command('killedpid')}" in text
    assert f"resume: {_command('failed')}" in text
    assert "failed000000 failed: FloatingPointError: loss is nan at step 12" in text
    assert "resume: cd /w && python -m vlm_sweeps.run tracking.uri=http://***@h:5000" in text
    assert "credentials redacted" in text
    assert _command("live") not in text and _command("finished") not in text
    assert "old attempt" not in text


def test_the_store_view_of_one_sweep(store, tmp_path, status_cli):
    out = status_cli(["--tracking-uri", store, "--sweep", "multirun_b"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "sweep multirun_b: 1 jobs" in out.stdout and set(_states(out.stdout)) == {"interrupt000"}


def test_without_a_manifest_status_falls_back_to_the_store(store, tmp_path, status_cli):
    """No SLURM sweep under --root: the store of $MLFLOW_TRACKING_URI, else ./mlflow.db."""
    out = status_cli([], tmp_path)  # tmp_path/mlflow.db is the store
    assert out.returncode == 0, out.stderr
    assert _states(out.stdout)["stale0000000"] == "dead"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = status_cli([], elsewhere, {"MLFLOW_TRACKING_URI": store})
    assert out.returncode == 0, out.stderr
    assert _states(out.stdout)["killedpid000"] == "dead"


def test_no_store_is_an_error_not_a_new_store(tmp_path, status_cli):
    out = status_cli([], tmp_path)
    assert out.returncode == 2
    assert "no SLURM sweep recorded" in out.stderr and "no tracking store at" in out.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_an_unknown_experiment_names_the_ones_there(store, tmp_path, status_cli):
    out = status_cli(["--tracking-uri", store, "--experiment", "nope"], tmp_path)
    assert out.returncode == 2 and "no experiment 'nope'" in out.stderr and naming.DEFAULT_EXPERIMENT in out.stderr


def _record(tmp_path: Path, uri: str) -> manifest.Manifest:
    record = manifest.Manifest(sweep_id="multirun_a", submitted_at="2026-01-01T00:00:00", tracking_uri=uri,
                               experiment=naming.DEFAULT_EXPERIMENT, submitit_folder="f", root=str(tmp_path / "root"),
                               jobs=[manifest.JobEntry(0, "stale0000000", ["encoder=siglip"], {}, job_id="5_0"),
                                     manifest.JobEntry(1, "live00000000", ["encoder=clip"], {}, job_id="5_1")])
    manifest.write(record)
    return record


def test_the_slurm_view_says_when_slurm_runs_a_dead_job(store, tmp_path, monkeypatch, capsys):
    _record(tmp_path, store)
    monkeypatch.setattr(cluster, "job_states", lambda ids: {i: cluster.SlurmState(i, "RUNNING") for i in ids})
    assert cli.main(["status", "--root", str(tmp_path / "root")]) == 0
    text = capsys.readouterr().out
    stale = next(line for line in text.splitlines() if line.startswith("stale0000000"))
    live = next(line for line in text.splitlines() if line.startswith("live00000000"))
    assert " dead " in stale and "5_0 RUNNING" in stale and " running " in live
    assert "1 running, 1 dead" in text
    assert "stale0000000 dead: run" in text and "SLURM still says RUNNING" in text


def test_the_slurm_view_reaches_a_store_recorded_without_credentials(tmp_path, monkeypatch, capsys):
    """The manifest holds `http://***@host`; the store is reached with the URI of the environment."""
    real = "http://alice:SECRET@tracker:5000"
    _record(tmp_path, "http://***@tracker:5000")
    monkeypatch.setattr(cluster, "job_states", lambda ids: {})
    reached = []
    monkeypatch.setattr(status.store, "job_runs", lambda uri, experiment: reached.append(uri) or {})
    monkeypatch.delenv("VLM_SWEEPS_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main(["status", "--root", str(tmp_path / "root")]) == 2
    assert "export VLM_SWEEPS_TRACKING_URI or MLFLOW_TRACKING_URI" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", real)
    assert cli.main(["status", "--root", str(tmp_path / "root")]) == 0
    assert reached == [real]
    out = capsys.readouterr().out
    assert "SECRET" not in out and "tracking http://***@tracker:5000" in out
