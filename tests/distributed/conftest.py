"""Distributed tier: jobs trained by 2 CPU processes (gloo) started with torchrun, compared with the
same jobs trained by one process. Every 2-process job of the session runs in ONE torchrun launch
(tests/distributed/worker.py runs them one after the other: process start-up and imports are the
expensive part); the 1-process references run in the test process, once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SMALL, compose

# two_stage: a frozen LLM that gradients cross (align), then a stage that trains it; DDP re-wraps per
# stage. Finetune micro-batches of 3 give ranks unequal micro-batch counts (padded with blanks) on
# the ragged batches of SMALL (13 text-only samples, 3 images). Checkpoints every 2 steps: resume.
JOB = SMALL + ["optimization=two_stage", "scale.finetune.micro_batch_size=3", "run.log_every=1",
               "run.checkpoint_every=2", "run.threads=1"]
FAIL_AT = 5  # a global step of the finetune stage; the last checkpoint before it is step 4


@dataclass
class Runs:
    uri: str  # the tracking store of every job of this tier, one experiment per job name
    ranks: dict[int, dict[str, dict]]  # rank -> job name -> what that rank saw (worker.py)
    grad_norms: dict[int, dict[str, list[float]]]  # rank -> job name -> gradient norm of every step


def job(name: str, root: Path, uri: str, extra: list[str] = (), *, run: str | None = None) -> dict:
    """One entry of the worker's plan: the job `name`, in the experiment and runs folder `run`
    (default: its name; a failed job and its resume share theirs)."""
    return {"name": name, "overrides": JOB + [f"tracking.uri={uri}", f"tracking.experiment={run or name}",
                                              f"paths.runs_dir={root / (run or name)}", *extra]}


@pytest.fixture(scope="session")
def dist_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("distributed")


@pytest.fixture(scope="session")
def store_uri(dist_root) -> str:
    return f"sqlite:///{dist_root / 'mlflow.db'}"


@pytest.fixture(scope="session")
def one_process(small_world, session_root, dist_root, store_uri):
    """The 1-process runs: the reference job (result, gradient norm per step), and a job that fails
    at FAIL_AT leaving a 1-process checkpoint (with run.parallel=fsdp: a no-op on one process)
    for a 2-process FSDP job to resume."""
    from vlm_sweeps.job import run_job
    from vlm_sweeps.train.distributed import Distributed

    threads, norms, clip = torch.get_num_threads(), [], Distributed.clip_grad_norm_

    def recorded(self, params, max_norm):
        norm = clip(self, params, max_norm)
        norms.append(float(norm))
        return norm

    Distributed.clip_grad_norm_ = recorded
    try:
        reference = run_job(compose(job("reference", dist_root, store_uri)["overrides"], root=session_root))
        reference_norms = list(norms)
        with pytest.raises(RuntimeError, match=f"injected failure at step {FAIL_AT}"):
            run_job(compose(job("single_then_fsdp", dist_root, store_uri,
                                [f"run.fail_at_step={FAIL_AT}", "run.parallel=fsdp"])["overrides"], root=session_root))
    finally:
        Distributed.clip_grad_norm_ = clip
        torch.set_num_threads(threads)
    return reference, reference_norms


@pytest.fixture(scope="session")
def two_processes(one_process, session_root, dist_root, store_uri) -> Runs:
    """Every 2-process job, in one torchrun launch of tests/distributed/worker.py."""
    jobs = [job("ddp", dist_root, store_uri, ["run.parallel=ddp"]),
            job("fsdp", dist_root, store_uri, ["run.parallel=fsdp"])]
    for mode in ("ddp", "fsdp"):  # fails, then resumes from its checkpoint in the same MLflow run
        jobs.append(job(f"{mode}_fail", dist_root, store_uri, [f"run.parallel={mode}", f"run.fail_at_step={FAIL_AT}"],
                        run=f"{mode}_resume"))
        jobs.append(job(f"{mode}_resume", dist_root, store_uri, [f"run.parallel={mode}"]))
    jobs.append(job("single_then_fsdp", dist_root, store_uri, ["run.parallel=fsdp"]))
    plan, out = dist_root / "plan.json", dist_root / "out"
    out.mkdir()
    plan.write_text(json.dumps({"root": str(session_root), "jobs": jobs}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    # --standalone: a local rendezvous on a free port; torchrun sets OMP_NUM_THREADS=1 per process
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "worker.py"), str(plan), str(out)]
    proc = subprocess.Popen(cmd, cwd=dist_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        pytest.fail("2-process jobs timed out:\n" + log[-5000:])
    assert proc.returncode == 0, log[-5000:]
    ranks = {r: json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)}
    return Runs(store_uri, {r: {e["name"]: e for e in seen["jobs"]} for r, seen in ranks.items()},
                {r: seen["grad_norms"] for r, seen in ranks.items()})
