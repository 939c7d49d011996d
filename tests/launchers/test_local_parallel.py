"""`hydra/launcher=local`: how jobs are given CPUs and GPUs, and the engine itself, with tiny task
functions in real job processes (submitit's local executor): jobs run `parallel` at a time, each
pinned to its own CPUs (torch threads follow), a failing or killed job fails alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
from hydra.core.utils import JobStatus

from launchers import local
from launchers.local import Slot, plan_slots, visible_gpus

REPO = Path(__file__).resolve().parents[2]
TWO_CPUS = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")


# --- slots ------------------------------------------------------------------------------------------

def test_two_jobs_on_two_cpus_get_one_cpu_each():
    assert plan_slots(2, [], [0, 1], budget=2) == [Slot(0, (0,)), Slot(1, (1,))]


def test_the_default_is_one_job_with_every_cpu():
    assert plan_slots(1, [], [0, 1, 2, 3], budget=4) == [Slot(0, (0, 1, 2, 3))]


def test_a_cpu_quota_below_the_affinity_sets_the_share():
    # 8 CPUs visible, a cgroup quota of 2: two jobs get one CPU each, not four
    assert [s.cpus for s in plan_slots(2, [], range(8), budget=2)] == [(0,), (1,)]


def test_cpus_per_job_and_auto():
    assert [s.cpus for s in plan_slots(2, [], range(8), budget=8, cpus_per_job=3)] == [(0, 1, 2), (3, 4, 5)]
    assert len(plan_slots("auto", [], range(4), budget=4)) == 4  # one job per CPU
    gpu_slots = plan_slots("auto", ["0", "1"], range(8), budget=8)
    assert [(s.cpus, s.gpu) for s in gpu_slots] == [((0, 1, 2, 3), "0"), ((4, 5, 6, 7), "1")]


def test_more_jobs_than_cpus_share_them_and_say_so(caplog):
    slots = plan_slots(3, [], [0, 1], budget=2)
    assert [s.cpus for s in slots] == [(0,), (1,), (0,)]
    assert "share CPUs" in caplog.text


def test_more_jobs_than_gpus_take_them_in_turn(caplog):
    assert [s.gpu for s in plan_slots(3, ["2", "5"], range(6), budget=6)] == ["2", "5", "2"]
    assert "several jobs" in caplog.text


def test_unpinned_slots_have_no_cpu_set():
    assert [s.cpus for s in plan_slots(2, [], [0, 1], budget=2, pin=False)] == [None, None]


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5])
def test_a_bad_parallel_says_what_is_accepted(bad):
    with pytest.raises(ValueError, match="positive integer or auto"):
        plan_slots(bad, [], [0, 1], budget=2)


def test_visible_gpus():
    assert visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "0,3"}) == ["0", "3"]
    assert visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": ""}) == []  # hidden by the user: none
    assert visible_gpus([1, 2], {}) == ["1", "2"]
    assert visible_gpus([], {"CUDA_VISIBLE_DEVICES": "0"}) == []


def test_slot_describes_itself():
    assert Slot(0, (0,)).describe() == "CPU 0"
    assert Slot(1, (2, 3), "1").describe() == "CPUs 2,3, GPU 1"


# --- the launcher config ----------------------------------------------------------------------------

@pytest.fixture()
def local_master():
    """(config loader, master config) of `python -m vlm_sweeps.run -m ... hydra/launcher=local`."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from vlm_sweeps.config import register_configs

    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3", job_name="run"):
        loader = GlobalHydra.instance().config_loader()
        yield loader, loader.load_configuration("config", ["hydra/launcher=local"], run_mode=RunMode.MULTIRUN)


def test_hydra_launcher_local_composes_with_a_sequential_default(local_master):
    _, master = local_master
    launcher = master.hydra.launcher
    assert launcher._target_ == "hydra_plugins.vlm_sweeps_launcher.local_launcher.LocalLauncher"
    assert launcher.parallel == 1 and launcher.gpus == "auto" and launcher.pin is True


def test_plugin_module_is_light():
    """Hydra imports every hydra_plugins module on every run."""
    code = ("import sys, hydra_plugins.vlm_sweeps_launcher.local_launcher as m; "
            "print(sorted({'submitit', 'mlflow', 'torch', 'launchers', 'vlm_sweeps'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_a_job_is_pinned_before_torch_can_load():
    """What submitit unpickles in the job's process, before PinnedJob pins it, loads no torch: the
    job itself (its config, task function and Hydra's state) is unpickled only after pinning."""
    job = local.PinnedJob(cloudpickle.dumps(("anything",)), b"config", Slot(0, (0,)), "/tmp/pid")
    code = ("import sys, pickle; job = pickle.loads(sys.stdin.buffer.read()); "
            "print(job.slot, sorted({'torch', 'vlm_sweeps', 'mlflow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], input=cloudpickle.dumps(job), capture_output=True,
                         check=True, cwd=REPO)
    assert out.stdout.decode().strip() == "Slot(index=0, cpus=(0,), gpu=None) []"


# --- the engine, with tiny task functions -----------------------------------------------------------

def report(cfg) -> dict:
    """A task function: where the job ran, and what torch's thread count became there."""
    from hydra.core.hydra_config import HydraConfig

    from vlm_sweeps import cpu_share

    start = time.time()
    threads = cpu_share.start(None)
    time.sleep(1.0)
    return {"affinity": sorted(os.sched_getaffinity(0)), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "threads": threads, "start": start, "end": time.time(), "pid": os.getpid(),
            "output_dir": HydraConfig.get().runtime.output_dir, "seed": cfg.seed}


def naps(cfg) -> dict:
    start = time.time()
    time.sleep(1.0)
    return {"start": start, "end": time.time()}


def misbehaves(cfg) -> str:
    if cfg.seed == 1:
        raise ValueError("a task that raises")
    if cfg.seed == 2:
        print("error: what the entry point says before exiting", file=sys.stderr, flush=True)
        raise SystemExit(2)
    if cfg.seed == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return "fine"


@pytest.fixture()
def engine(local_master, tmp_path, monkeypatch):
    """run(task_function, seeds, slots) -> JobReturns: one job per seed through local._run, in real
    job processes, with a private CPU registry (other vlm_sweeps jobs on the host do not count)."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.singleton import Singleton

    from launchers.freeze import Composer

    loader, master = local_master
    monkeypatch.setenv("VLM_SWEEPS_CPU_REGISTRY", str(tmp_path / "cpu_registry"))
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    options = {"timeout_min": 10, "poll_s": 0.1}
    composer = Composer(loader)

    def run(task, seeds, slots):
        jobs = [local._compose(composer, master, [f"seed={s}", f"paths.root={tmp_path}",
                                                  f"hydra.sweep.dir={tmp_path / 'sweep'}"], i)
                for i, s in enumerate(seeds)]
        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the job processes cannot import tests/
        try:
            common = cloudpickle.dumps((Callbacks(), task, Singleton.get_state()))
        finally:
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        return local._run(jobs, slots, common, tmp_path / "submitit", options, master)

    return run


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
@TWO_CPUS
def test_two_jobs_run_at_once_each_pinned_to_its_cpu_with_one_thread(engine, tmp_path):
    returns = engine(report, [0, 1], plan_slots(2, [], [0, 1], budget=2))
    assert [r.status for r in returns] == [JobStatus.COMPLETED] * 2
    a, b = (r.return_value for r in returns)
    assert (a["affinity"], b["affinity"]) == ([0], [1])
    assert a["threads"] == b["threads"] == 1  # cpu_share: 1 CPU each, the jobs' CPUs do not overlap
    assert a["pid"] != b["pid"] and a["pid"] != os.getpid()  # each in a process of its own
    assert a["start"] < b["end"] and b["start"] < a["end"]  # at the same time
    assert (a["cuda"], b["cuda"]) == ("", "")  # CPU jobs: no GPU visible
    # Hydra's per-job output folders and files, as the basic launcher writes them
    assert [Path(r.return_value["output_dir"]).name for r in returns] == ["0", "1"]
    assert (tmp_path / "sweep" / "1" / ".hydra" / "config.yaml").is_file()
    assert (tmp_path / "sweep" / "1" / ".hydra" / "overrides.yaml").read_text().count("seed=1") == 1


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_one_slot_runs_the_jobs_one_after_another(engine):
    a, b = (r.return_value for r in engine(naps, [0, 1], plan_slots(1, [], [0], budget=1)))
    assert a["end"] <= b["start"]


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
def test_each_job_sees_only_its_gpu(engine):
    slots = [Slot(0, None, "3"), Slot(1, None, "5")]
    assert sorted(r.return_value["cuda"] for r in engine(report, [0, 1], slots)) == ["3", "5"]


@pytest.mark.integration  # starts processes of ours (tests/conftest.py: tiers)
@TWO_CPUS
def test_a_failing_or_killed_job_fails_alone_and_says_why(engine, tmp_path):
    returns = engine(misbehaves, [0, 1, 2, 3], plan_slots(2, [], [0, 1], budget=2))
    assert [r.status for r in returns] == [JobStatus.COMPLETED] + [JobStatus.FAILED] * 3
    assert returns[0].return_value == "fine"
    with pytest.raises(ValueError, match="a task that raises"):
        _ = returns[1].return_value  # Hydra's run_job caught it in the job, as the basic launcher's does
    with pytest.raises(RuntimeError, match=r"exited \(2\): error: what the entry point says"):
        _ = returns[2].return_value
    with pytest.raises(RuntimeError, match="killed"):
        _ = returns[3].return_value
