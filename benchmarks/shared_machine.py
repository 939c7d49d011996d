"""Two default tiny jobs at once on one machine: the training throughput of each against one job
alone, with torch's default threads forced (before: each job takes every core) and with automatic
threads (after: each takes its share, vlm_sweeps/cpu_share.py). Target: each job of a pair keeps
>= 40 % of the solo job's throughput.

    python benchmarks/shared_machine.py [--epochs 0.2] [--quick] [--cases b c] [--extra OVERRIDE ...]

Cases: (a) one job alone, automatic threads; (b) two at once, `run.threads=<torch's default>`;
(c) two at once, `run.threads=null`. Each job is `python -m vlm_sweeps.run` in a process of its own
with its own MLflow store and runs folder and a shared cache, in which the synthetic world and the
tokenizer are built once before anything is timed. A job's figure is the median of its
`train/samples_per_s` curve points. The jobs use a private CPU registry, so other vlm_sweeps jobs on
the machine do not change their thread counts (but do their timings: run it on an idle machine).
With the default epochs a "before" pair can take several minutes on 2 cores; --quick is a smoke run.
`--cases c` runs one pair only (after case a); `--extra` adds Hydra overrides to every job and to the
caches (e.g. smaller synthetic data, `run.log_every=1` so that short jobs log throughput points).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.40
THREADS_LINE = re.compile(r"torch threads: .*")


def env(work: Path) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    found["PYTHONPATH"] = str(REPO) + os.pathsep + found.get("PYTHONPATH", "")
    found["VLM_SWEEPS_CPU_REGISTRY"] = str(work / "cpu_registry")
    return found


def job_command(work: Path, name: str, epochs: float, threads: str, extra: list[str]) -> list[str]:
    folder = work / name
    return [sys.executable, "-m", "vlm_sweeps.run", f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
            f"paths.root={folder}", f"paths.runs_dir={folder / 'runs'}", f"paths.cache_dir={work / 'cache'}",
            "run.progress=false", "run.feature_cache=false", "benchmarks.suite=[synth_vqa]",
            "benchmarks.max_examples=16", f"epochs={epochs}", f"run.threads={threads}", *extra]


def build_caches(work: Path, extra: list[str]) -> None:
    """The synthetic world and the tokenizer of the jobs' settings, into the shared cache."""
    code = ("import sys; from pathlib import Path; from hydra import compose, initialize_config_dir; "
            "from vlm_sweeps.config import register_configs; from vlm_sweeps.data.synthetic import ensure_world; "
            "from vlm_sweeps.job import load_tokenizer; register_configs(); "
            "initialize_config_dir(sys.argv[1], version_base='1.3').__enter__(); "
            "cfg = compose('config', overrides=[f'paths.cache_dir={sys.argv[2]}', *sys.argv[3:]]); cache = Path(sys.argv[2]); "
            "load_tokenizer(cfg, ensure_world(cache, cfg.data.synthetic), cache)")
    subprocess.run([sys.executable, "-c", code, str(REPO / "conf"), str(work / "cache"), *extra], cwd=work,
                   env=env(work), check=True)


def samples_per_s(work: Path, name: str) -> float:
    from mlflow.tracking import MlflowClient

    from vlm_sweeps import naming

    client = MlflowClient(f"sqlite:///{work / name / 'mlflow.db'}")
    experiments = client.search_experiments()
    runs = [r for e in experiments for r in client.search_runs([e.experiment_id])
            if r.data.tags.get(naming.TAG_KIND) == "job"]
    assert len(runs) == 1, f"{name}: expected one job run, found {len(runs)}"
    points = [m.value for m in client.get_metric_history(runs[0].info.run_id, naming.TRAIN_SAMPLES_PER_S)]
    assert points, f"{name}: no {naming.TRAIN_SAMPLES_PER_S} points (a longer --epochs logs some)"
    return statistics.median(points)


def run_at_once(work: Path, names: list[str], epochs: float, threads: str,
                extra: list[str]) -> dict[str, tuple[float, str]]:
    """Start the jobs together, wait for all; {name: (samples/s, its 'torch threads' log lines)}."""
    procs = {}
    for name in names:
        (work / name).mkdir()
        procs[name] = subprocess.Popen(job_command(work, name, epochs, threads, extra), cwd=work / name, env=env(work),
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for name, proc in procs.items():
        err, _ = proc.communicate()  # its log and output
        if proc.returncode != 0:
            raise SystemExit(f"job {name} failed:\n{err[-3000:]}")
        results[name] = (samples_per_s(work, name), "; ".join(THREADS_LINE.findall(err)) or "(not logged)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=0.2, help="finetune epochs of each job (default 0.2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: epochs=0.05")
    parser.add_argument("--cases", nargs="+", choices=["b", "c"], default=["b", "c"],
                        help="the pairs to run after case a (default: both)")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every job and to the caches")
    args = parser.parse_args()
    epochs = 0.05 if args.quick else args.epochs
    default_threads = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                     capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="shared_machine_") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        build_caches(work, args.extra)  # untimed
        print(f"caches built in {time.perf_counter() - t0:.0f} s; CPUs here: {len(os.sched_getaffinity(0))}, "
              f"torch's default threads: {default_threads}; epochs={epochs}", flush=True)
        cases = {}
        for case, names, threads in (("a: one job alone", ["solo"], "null"),
                                     (f"b: two at once, run.threads={default_threads}", ["b1", "b2"], default_threads),
                                     ("c: two at once, run.threads=null", ["c1", "c2"], "null")):
            if case[0] != "a" and case[0] not in args.cases:
                continue
            t0 = time.perf_counter()
            cases[case] = run_at_once(work, names, epochs, threads, args.extra)
            print(f"  {case}: {time.perf_counter() - t0:.0f} s", flush=True)
    solo = cases["a: one job alone"]["solo"][0]
    print(f"\n{'case':<34} {'job':<5} {'samples/s':>10} {'of solo':>8}  threads (job log)")
    for case, jobs in cases.items():
        for name, (rate, threads_log) in jobs.items():
            print(f"{case:<34} {name:<5} {rate:>10.1f} {rate / solo:>8.2f}  {threads_log}")
    print()
    for case, jobs in list(cases.items())[1:]:
        worst = min(rate for rate, _ in jobs.values()) / solo
        print(f"{case}: min {worst:.2f} of solo, {'meets' if worst >= TARGET else 'misses'} the "
              f"{TARGET:.0%} target")


if __name__ == "__main__":
    main()
