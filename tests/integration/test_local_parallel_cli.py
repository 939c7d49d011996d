"""`hydra/launcher=local` through the real CLI: a small sweep two jobs at a time, each in its own
process on its own CPU; the same command again starts nothing; Ctrl-C (the terminal's, to the whole
process group) and SIGTERM (to the launcher) leave resumable runs that the same command finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, SMALL, seed_store
from vlm_sweeps import naming

pytestmark = pytest.mark.integration

LOCAL = ["hydra/launcher=local", "hydra.launcher.parallel=2", "hydra.launcher.cpus_per_job=1"]


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["VLM_SWEEPS_CPU_REGISTRY"] = str(tmp_path / "cpu_registry")  # other jobs on the host do not count
    return env


def sweep(tmp_path: Path, args: list[str], **popen) -> subprocess.Popen:
    uri = f"sqlite:///{seed_store(tmp_path / 'mlflow.db')}"
    return subprocess.Popen([sys.executable, "-m", "vlm_sweeps.run", "-m", *args, *LOCAL, *SMALL,
                             f"tracking.uri={uri}", f"paths.root={tmp_path / 'root'}"], cwd=tmp_path,
                            env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)


def finish(proc: subprocess.Popen, timeout: float = 900) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def job_runs(tmp_path: Path) -> list:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name(naming.DEFAULT_EXPERIMENT)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{naming.TAG_KIND}` = '{naming.KIND_JOB}'")


def sweep_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "root" / "hydra").glob("multirun_*"))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_a_sweep_runs_two_jobs_at_once_one_cpu_each_and_the_same_command_starts_nothing(tmp_path):
    code, out, err = finish(sweep(tmp_path, ["encoder=clip,siglip", "resize=naive,letterbox"]))
    assert code == 0, out[-3000:] + err[-3000:]
    cpus = sorted(os.sched_getaffinity(0))
    assert f"running 4 of 4 jobs on this machine, 2 at a time (CPU {cpus[0]}; CPU {cpus[1]})" in out
    runs = job_runs(tmp_path)
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 1  # the sweep's one parent run
    assert len({r.data.tags[naming.TAG_PID] for r in runs}) == 4  # a process per job
    spans = sorted((r.info.start_time, r.info.end_time) for r in runs)
    assert any(a[1] > b[0] for a, b in zip(spans, spans[1:]))  # two at a time
    (first,) = sweep_dirs(tmp_path)
    for num in range(4):  # Hydra's own job folders, as the basic launcher leaves them
        assert (first / str(num) / ".hydra" / "config.yaml").is_file()
    logs = "".join(p.read_text() for p in (first / ".submitit").glob("*_log.out"))
    assert logs.count("torch threads: 1 (1 CPUs available, 1 vlm_sweeps jobs sharing them)") == 4

    code, out, err = finish(sweep(tmp_path, ["encoder=clip,siglip", "resize=naive,letterbox"]))
    assert code == 0, err[-3000:]
    assert out.count("skipped (already finished)") == 4 and "running 0 of 4 jobs" in out
    assert len(job_runs(tmp_path)) == 4
    assert not (sweep_dirs(tmp_path)[-1] / ".submitit").exists()  # no job process started

    status = subprocess.run([sys.executable, "-m", "launchers", "status", "--tracking-uri",
                             f"sqlite:///{tmp_path / 'mlflow.db'}"], cwd=tmp_path, capture_output=True, text=True,
                            env=environment(tmp_path))
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("finished") >= 4


def wait_until_both_train(tmp_path: Path, proc: subprocess.Popen, since: dict[str, int], timeout: float = 400) -> None:
    """Until both jobs hold a running run that logged a training step past `since` (run id ->
    step) and has a checkpoint to resume from."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if not any(d.joinpath(".submitit").is_dir() for d in sweep_dirs(tmp_path)):
            time.sleep(0.5)  # the launcher creates the store first: a reader must not race it
            continue
        try:
            ready = [r for r in job_runs(tmp_path)
                     if r.data.tags.get(naming.TAG_STATUS) == "running"
                     and (tmp_path / "root" / "runs" / r.data.tags[naming.TAG_SIGNATURE] / "checkpoint.pt").is_file()
                     and any(m.step > since.get(r.info.run_id, 0)
                             for m in client.get_metric_history(r.info.run_id, naming.TRAIN_LOSS))]
        except Exception:  # a read refused while the jobs write (sqlite locked)
            ready = []
        if len(ready) == 2:
            return
        time.sleep(0.5)
    raise AssertionError("the two jobs never both trained")


def test_ctrl_c_and_sigterm_leave_resumable_runs_that_the_same_command_finishes(tmp_path):
    # long enough (4 epochs) for both jobs to be seen training before they end
    args = ["encoder=clip,siglip", "data.synthetic.n_finetune=1500", "epochs=4", "run.checkpoint_every=2",
            "run.log_every=1", "tracking.heartbeat_s=1"]
    proc = sweep(tmp_path, args, start_new_session=True)
    wait_until_both_train(tmp_path, proc, {})
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches every process of the group
    code, out, err = finish(proc, timeout=300)
    assert code == 128 + signal.SIGINT, out[-2000:] + err[-2000:]
    runs = job_runs(tmp_path)
    assert [r.data.tags[naming.TAG_STATUS] for r in runs] == ["interrupted"] * 2, [r.data.tags for r in runs]
    ids = {r.info.run_id for r in runs}
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    last = {i: max(m.step for m in client.get_metric_history(i, naming.TRAIN_LOSS)) for i in ids}

    proc = sweep(tmp_path, args)  # resumes both; SIGTERM to the launcher alone stops them the same way
    wait_until_both_train(tmp_path, proc, last)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=300)
    assert code == 128 + signal.SIGTERM, out[-2000:] + err[-2000:]
    assert [r.data.tags[naming.TAG_STATUS] for r in job_runs(tmp_path)] == ["interrupted"] * 2

    code, out, err = finish(sweep(tmp_path, args))
    assert code == 0, out[-3000:] + err[-3000:]
    runs = job_runs(tmp_path)
    assert {r.info.run_id for r in runs} == ids and {r.info.status for r in runs} == {"FINISHED"}
    assert all(int(r.data.tags[naming.TAG_PREFIX + "resumes"]) >= 2 for r in runs)


def test_a_config_error_stops_the_sweep_before_any_job_starts(tmp_path):
    code, out, err = finish(sweep(tmp_path, ["encoder=clip,siglip", "epochs=-1"]))
    assert code == 2, out[-2000:] + err[-2000:]
    assert "error: invalid configuration" in err and "(jobs #0, #1)" in err and "Traceback" not in err
    assert not any(d.joinpath(".submitit").exists() for d in sweep_dirs(tmp_path))
