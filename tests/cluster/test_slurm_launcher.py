"""`hydra/launcher=slurm` on the real test cluster: a sweep submits and returns, finishes, is
skipped when submitted again; an interrupted job resumes into the same MLflow run with the same
final metrics; a failing job is FAILED in SLURM and in MLflow; a queued job keeps the config it
was submitted with, and the code (a snapshot) when the repository is edited and committed meanwhile,
also after a requeue; 12 concurrent jobs logging to one `mlflow server` lose nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from launchers import manifest
from tests.conftest import DEFAULT_SUITE, REPO, SMALL, MlflowServer, seed_job_store
from tests.launchers import code_probe
from vlm_sweeps import naming

pytestmark = pytest.mark.cluster

SWEEP = ["encoder=clip,siglip,dinosiglip", "resize=naive,letterbox"]
# one CPU and one thread per job: the node declares 16 CPUs on 2 real cores
COMMON = [*SMALL, "run.threads=1", "hydra/launcher=slurm", "hydra.launcher.resources.cpus_per_task=1",
          "hydra.launcher.resources.timeout_min=15"]
EVAL_PREFIXES = ("synth_",)


def submit(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None,
           timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m vlm_sweeps.run -m ARGS` from `cwd` (SLURM_CONF comes from the cluster fixture)."""
    seed_job_store(args, cwd)  # the schema, made once per worker (tests/conftest.py)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", "-m", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out, time.monotonic() - t0


def status(cwd: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "launchers", "status", *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def latest(cwd: Path) -> manifest.Manifest:
    return manifest.find(cwd / ".vlm_sweeps", None)


def wait_all(cluster, record: manifest.Manifest, timeout: float) -> dict[str, str]:
    arrays: dict[str, int] = {}
    for entry in record.jobs:
        if entry.job_id and not entry.skipped:
            main = entry.job_id.split("_")[0]
            arrays[main] = arrays.get(main, 0) + 1
    states: dict[str, str] = {}
    for main, n in arrays.items():
        states.update(cluster.wait(main, n_tasks=n, timeout=timeout))
    return states


def job_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("vlm_sweeps")
    return client.search_runs([exp.experiment_id], filter_string="tags.`vlm_sweeps.kind` = 'job'")


def eval_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith(EVAL_PREFIXES)}


@pytest.fixture(scope="module")
def cache_args(small_world, session_root) -> list[str]:
    """Jobs share the synthetic world and tokenizer the session built once."""
    return [f"paths.cache_dir={session_root / 'cache'}"]


# ---------------------------------------------------------------------------------------------
# the default 6-run sweep
# ---------------------------------------------------------------------------------------------
@dataclass
class SlurmSweep:
    cwd: Path
    first: subprocess.CompletedProcess
    first_s: float
    right_after: dict[str, str]  # sacct states the moment the submit returned
    states: dict[str, str]  # sacct states at the end
    record: manifest.Manifest
    second: subprocess.CompletedProcess
    second_record: manifest.Manifest
    status: str


@pytest.fixture(scope="module")
def slurm_sweep(slurm_cluster, cache_args, tmp_path_factory) -> SlurmSweep:
    cwd = tmp_path_factory.mktemp("slurm_sweep")
    args = [*SWEEP, *COMMON, *cache_args]
    # a run id exported in the submitting shell must not pull every job into one run
    first, first_s = submit(args, cwd, {"MLFLOW_RUN_ID": "0123456789abcdef0123456789abcdef"})
    record = latest(cwd)
    right_after = slurm_cluster.states(record.jobs[0].job_id.split("_")[0])
    states = wait_all(slurm_cluster, record, timeout=420)
    report = status(cwd)
    second, _ = submit(args, cwd)
    return SlurmSweep(cwd, first, first_s, right_after, states, record, second, latest(cwd), report)


def test_sweep_submits_and_returns(slurm_sweep):
    assert "submitted 6 of 6 jobs" in slurm_sweep.first.stdout
    assert len({e.job_id.split("_")[0] for e in slurm_sweep.record.jobs}) == 1  # one array, one class
    # the command came back while jobs were still queued or running (each takes >10 s here)
    assert any(s in ("PENDING", "RUNNING") for s in slurm_sweep.right_after.values()), slurm_sweep.right_after


def test_sweep_ends_with_6_finished_runs(slurm_sweep):
    assert set(slurm_sweep.states.values()) == {"COMPLETED"}
    runs = job_runs(slurm_sweep.record.tracking_uri)
    assert len(runs) == 6 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["vlm_sweeps.signature"] for r in runs} == {e.signature for e in slurm_sweep.record.jobs}
    assert "0123456789abcdef0123456789abcdef" not in {r.info.run_id for r in runs}
    assert {(r.data.params["encoder"], r.data.params["resize"]) for r in runs} == {
        (e, r) for e in ("clip", "siglip", "dinosiglip") for r in ("naive", "letterbox")}
    for run in runs:
        assert run.data.tags["vlm_sweeps.sweep_id"] == slurm_sweep.record.sweep_id
        assert eval_metrics(run), run.data.metrics


def test_same_command_again_submits_nothing(slurm_sweep):
    out = slurm_sweep.second.stdout
    assert "submitted 0 of 6 jobs" in out and "6 already finished (skipped)" in out, out
    assert all(e.skipped == "finished" and e.job_id is None and e.run_id for e in slurm_sweep.second_record.jobs)
    assert len(job_runs(slurm_sweep.record.tracking_uri)) == 6


def test_status_view(slurm_sweep):
    lines = slurm_sweep.status.splitlines()
    header = next(line for line in lines if line.startswith("signature"))
    assert header.split()[:5] == ["signature", "encoder", "resize", "state", "slurm"]
    rows = [line for line in lines if line[:12] in {e.signature for e in slurm_sweep.record.jobs}]
    assert len(rows) == 6 and all(" finished " in row and "COMPLETED" in row for row in rows), slurm_sweep.status
    assert "6 finished" in slurm_sweep.status


# ---------------------------------------------------------------------------------------------
# preemption: checkpoint, requeue, resume into the same run
# ---------------------------------------------------------------------------------------------
def test_interrupted_job_resumes_with_the_same_final_metrics(slurm_cluster, cache_args, tmp_path):
    import submitit

    # long enough to be caught mid-training, checkpointing often
    job = ["encoder=clip", "resize=letterbox", "epochs=6", "run.checkpoint_every=3", *COMMON, *cache_args]
    reference_cwd, cwd = tmp_path / "reference", tmp_path / "interrupted"
    reference_cwd.mkdir(), cwd.mkdir()
    submit(job, reference_cwd)  # the same job, uninterrupted, in a store of its own
    submit(job, cwd)
    record = latest(cwd)
    entry = record.jobs[0]
    checkpoint = Path(record.root) / "runs" / entry.signature / "checkpoint.pt"

    deadline = time.monotonic() + 240
    while not checkpoint.exists():
        assert time.monotonic() < deadline, f"no checkpoint at {checkpoint}"
        assert slurm_cluster.states(entry.job_id).get(entry.job_id) in (None, "PENDING", "RUNNING")
        time.sleep(0.2)
    (run_before,) = job_runs(record.tracking_uri)
    submitit.SlurmJob(folder=record.submitit_folder + "/%j", job_id=entry.job_id)._interrupt()

    # truthful while it waits for its next attempt (cred_expire keeps it pending ~10 s)
    deadline = time.monotonic() + 60
    while "REQUEUED" not in slurm_cluster.run("sacct", "-D", "-X", "-n", "-o", "State", "-j", entry.job_id).stdout:
        assert time.monotonic() < deadline, "the job was not requeued"
        time.sleep(0.5)
    assert " requeued " in status(cwd)

    wait_all(slurm_cluster, record, timeout=300)
    attempts = slurm_cluster.run("sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", entry.job_id).stdout.split()
    assert attempts[0] == "REQUEUED" and attempts[-1] == "COMPLETED", attempts
    (run,) = job_runs(record.tracking_uri)
    assert run.info.run_id == run_before.info.run_id and run.info.status == "FINISHED"
    assert run.data.tags.get("vlm_sweeps.resumes") == "1"

    wait_all(slurm_cluster, latest(reference_cwd), timeout=300)
    (reference,) = job_runs(latest(reference_cwd).tracking_uri)
    assert reference.data.tags["vlm_sweeps.signature"] == entry.signature
    assert eval_metrics(run) == eval_metrics(reference)
    assert run.data.metrics["train/loss"] == pytest.approx(reference.data.metrics["train/loss"], rel=1e-6)


# ---------------------------------------------------------------------------------------------
# a job that raises; a queued job whose YAML is edited
# ---------------------------------------------------------------------------------------------
@dataclass
class HeldJob:
    cwd: Path
    record: manifest.Manifest
    again: subprocess.CompletedProcess  # the same command while the job was still queued
    again_record: manifest.Manifest
    sacct: str
    status: str


@pytest.fixture(scope="module")
def failing_job(slurm_cluster, cache_args, tmp_path_factory) -> HeldJob:
    """Submitted held, its encoder option file edited while it waits, released; it fails at step 2."""
    cwd = tmp_path_factory.mktemp("failing_job")
    conf = cwd / "conf" / "encoder"
    conf.mkdir(parents=True)
    option = (REPO / "conf" / "encoder" / "clip.yaml").read_text()
    assert "image_size: 336" in option
    (conf / "clip_frozen.yaml").write_text(option.replace("name: clip", "name: clip_frozen"))
    args = ["encoder=clip_frozen", "run.fail_at_step=2", f"hydra.searchpath=[file://{cwd / 'conf'}]",
            "+hydra.launcher.sbatch_flags.hold=true", *COMMON, *cache_args]
    submit(args, cwd)
    record = latest(cwd)
    job_id = record.jobs[0].job_id
    again, _ = submit(args, cwd)
    again_record = latest(cwd)
    (conf / "clip_frozen.yaml").write_text(option.replace("name: clip", "name: clip_frozen")
                                           .replace("image_size: 336", "image_size: 224"))
    slurm_cluster.run("scontrol", "release", job_id)
    slurm_cluster.wait(job_id, timeout=240)
    sacct = slurm_cluster.run("sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State,ExitCode").stdout.strip()
    return HeldJob(cwd, record, again, again_record, sacct, status(cwd, "--sweep", record.sweep_id))


def test_failing_job_is_failed_in_sacct_and_mlflow(failing_job):
    state, exit_code = failing_job.sacct.split("|")
    assert state == "FAILED" and exit_code != "0:0", failing_job.sacct
    (run,) = job_runs(failing_job.record.tracking_uri)
    assert run.info.status == "FAILED"
    assert "injected failure at step 2" in run.data.tags["vlm_sweeps.error"]
    assert " failed " in failing_job.status and "injected failure at step 2" in failing_job.status


def test_queued_job_is_not_submitted_twice(failing_job):
    assert "submitted 0 of 1 jobs" in failing_job.again.stdout
    assert "1 already queued or running (skipped)" in failing_job.again.stdout
    (entry,) = failing_job.again_record.jobs
    assert (entry.skipped, entry.job_id) == ("active", failing_job.record.jobs[0].job_id)


def test_queued_job_keeps_the_config_it_was_submitted_with(failing_job):
    (run,) = job_runs(failing_job.record.tracking_uri)
    assert run.data.params["encoder"] == "clip_frozen"
    assert run.data.params["encoder.image_size"] == "336"  # the file said 224 when the job started


# ---------------------------------------------------------------------------------------------
# tracking=server: 12 concurrent jobs, one fresh store
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def mlflow_server(tmp_path):
    """`mlflow server` on a fresh sqlite database (the README shows the database-backed one)."""
    server = MlflowServer(tmp_path, workers=2).start()
    yield server.uri
    server.kill()


def test_12_concurrent_jobs_on_one_server_lose_nothing(slurm_cluster, cache_args, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    # wait=true: the command returns when every job has ended, non-zero if one failed
    out, _ = submit(["seed=range(12)", "tracking=server", f"tracking.uri={mlflow_server}",
                     "hydra.launcher.wait=true", *COMMON, *cache_args], tmp_path)
    assert "submitted 12 of 12 jobs" in out.stdout
    runs = job_runs(mlflow_server)
    assert len(runs) == 12 and {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(int(r.data.params["seed"]) for r in runs) == list(range(12))
    client = MlflowClient(tracking_uri=mlflow_server)
    keys = {frozenset(r.data.metrics) for r in runs}
    assert len(keys) == 1, keys  # every run has every metric
    assert {naming.headline_metric(b) for b in DEFAULT_SUITE} | {"train/loss"} <= set(next(iter(keys)))
    curves = {len(client.get_metric_history(r.info.run_id, "train/loss")) for r in runs}
    assert len(curves) == 1 and curves.pop() > 0  # every training-curve point of every run
    for run in runs:
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}


# ---------------------------------------------------------------------------------------------
# arrays and sbatch options (held, then cancelled: nothing runs)
# ---------------------------------------------------------------------------------------------
def test_arrays_per_resource_class_cut_at_the_limit_with_the_options(slurm_cluster, tmp_path):
    # seeds 0-2 form a class of their own (2 CPUs, 1 GB); arrays hold at most 2 tasks
    out, seconds = submit(["seed=range(5)", *COMMON, "hydra.launcher.max_array_size=2",
                           "+hydra.launcher.resource_classes.big={when: {seed: [0, 1, 2]}, "
                           "resources: {cpus_per_task: 2, mem_gb: 1}}",
                           "hydra.launcher.array_parallelism=1", "hydra.launcher.partition=debug",
                           "hydra.launcher.setup=['export VLM_SETUP_MARK=1']",
                           "+hydra.launcher.sbatch_flags.hold=true"], tmp_path)
    record = latest(tmp_path)
    arrays: dict[str, set[str]] = {}
    for entry in record.jobs:
        arrays.setdefault(entry.job_id.split("_")[0], set()).add(entry.resource_class)
    try:
        sizes = [sum(e.job_id.split("_")[0] == main for e in record.jobs) for main in arrays]
        assert sorted(sizes) == [1, 2, 2], record.jobs  # a lone job is submitted as a plain job
        assert all(len(classes) == 1 for classes in arrays.values())  # one class per array
        for main, (resource_class,) in arrays.items():
            info = slurm_cluster.run("scontrol", "show", "job", main).stdout
            assert "Partition=debug" in info and "Reason=JobHeldUser" in info
            if resource_class == "big":
                assert "CPUs/Task=2" in info and "MinMemoryNode=1G" in info, info
            else:  # nothing inherited from the other class
                assert resource_class == "default" and "CPUs/Task=1" in info and "MinMemoryNode=1G" not in info, info
        scripts = list(Path(record.submitit_folder).glob("*/*_submission.sh"))
        assert len(scripts) == 3 and all("export VLM_SETUP_MARK=1" in p.read_text() for p in scripts)
        assert any("#SBATCH --array=0-1%1" in p.read_text() for p in scripts)
    finally:
        slurm_cluster.run("scancel", *arrays)


# ---------------------------------------------------------------------------------------------
# the code: edited and committed while the job waits; the job (and its requeue) runs the snapshot
# ---------------------------------------------------------------------------------------------
@dataclass
class EditedCodeJob:
    repo: Path
    commit: str  # at submit
    new_commit: str  # made while the job was queued
    record: manifest.Manifest
    script: str  # the job's sbatch script
    attempts: list[str]  # sacct states, oldest first
    probes: Path


@pytest.fixture(scope="module")
def edited_code_job(slurm_cluster, cache_args, tmp_path_factory) -> EditedCodeJob:
    """Submitted held from a copy of the repository (its root the working folder), the code edited
    and committed, released; interrupted once it runs (requeued: a second attempt), then finished."""
    import submitit

    tmp = tmp_path_factory.mktemp("edited_code")
    repo, commit = code_probe.work_repo(tmp / "repo")
    probes = tmp / "probes"
    submit(["+hydra.launcher.sbatch_flags.hold=true", *COMMON, *cache_args], repo,
           {"PYTHONPATH": str(repo), code_probe.ENV: str(probes)})
    record = latest(repo)
    job_id = record.jobs[0].job_id
    new_commit = code_probe.edit_and_commit(repo)
    (script,) = Path(record.submitit_folder).glob("*/*_submission.sh")
    slurm_cluster.run("scontrol", "release", job_id)
    deadline = time.monotonic() + 240
    while not code_probe.job_records(probes):  # the first attempt has imported its code (no run yet)
        assert time.monotonic() < deadline, f"job {job_id} did not start: {slurm_cluster.states(job_id)}"
        time.sleep(0.2)
    submitit.SlurmJob(folder=record.submitit_folder + "/%j", job_id=job_id)._interrupt()
    deadline = time.monotonic() + 60
    while "REQUEUED" not in slurm_cluster.run("sacct", "-D", "-X", "-n", "-o", "State", "-j", job_id).stdout:
        assert time.monotonic() < deadline, "the job was not requeued"
        time.sleep(0.5)
    wait_all(slurm_cluster, record, timeout=300)
    attempts = slurm_cluster.run("sacct", "-D", "-X", "-n", "-P", "-o", "State", "-j", job_id).stdout.split()
    return EditedCodeJob(repo, commit, new_commit, record, script.read_text(), attempts, probes)


def test_a_queued_and_requeued_job_runs_the_code_it_was_submitted_with(edited_code_job):
    job = edited_code_job
    assert job.attempts[0] == "REQUEUED" and job.attempts[-1] == "COMPLETED", job.attempts
    snapshot = Path(job.record.code)
    assert snapshot.parent.name == ".code" and f"export VLM_SWEEPS_CODE={snapshot}" in job.script
    records = code_probe.job_records(job.probes)
    assert len({r["pid"] for r in records}) >= 2, records  # both attempts, the second after the edit
    for r in records:
        assert r["version"] == code_probe.SUBMITTED and Path(r["file"]).is_relative_to(snapshot), r
    assert [r.info.status for r in job_runs(job.record.tracking_uri)].count("FINISHED") == 1


def test_a_queued_job_describes_the_commit_and_dirty_diff_it_was_submitted_with(edited_code_job):
    """What `vlm_sweeps.code_version.describe()` says in each attempt's process (what tracking records)."""
    job = edited_code_job
    assert job.new_commit != job.commit
    code_probe.assert_describes_the_launch(code_probe.job_records(job.probes), Path(job.record.code), job.commit)


def test_a_queued_job_run_records_the_commit_and_diff_it_was_submitted_with(edited_code_job):
    code_probe.assert_runs_record_the_launch(edited_code_job.record.tracking_uri, 1, edited_code_job.commit)
