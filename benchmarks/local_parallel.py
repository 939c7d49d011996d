"""Wall time of the README's default sweep (`encoder=clip,siglip,dinosiglip resize=naive,letterbox`,
6 jobs) run sequentially (Hydra's basic launcher, the default: one job after another in one
process, each with every core) and with `hydra/launcher=local hydra.launcher.parallel=2` (two jobs at
a time, each in its own process pinned to its own core, one torch thread each), in one run of this
script. The last line is the headline: the sequential / parallel wall-time ratio.

Each sweep is one `python -m vlm_sweeps.run -m ...` from a fresh folder (its own paths.root, tracking
store and cache), into which the synthetic world and the tokenizer, built once before anything is
timed, are copied: both sweeps start without tokenized records or frozen features, and each builds
them as a first run would. The jobs use a private CPU registry (vlm_sweeps/cpu_share.py), so that
vlm_sweeps jobs of others on the machine do not change their thread counts; other work does change
the timings, so the load average is printed before and after each sweep (`--max-load` waits for the
machine to be quieter first). Both sweeps must log the same 6 runs; their scores are compared.

Usage: python benchmarks/local_parallel.py [--extra OVERRIDE ...] [--max-load 1.0] [--sweep AXIS=OPTIONS ...]
    about 10-13 minutes on a 2-core CPU at the default settings;
    `--extra data.synthetic.n_finetune=4000` for a shorter run (same sweep, smaller data);
    `--sweep encoder=clip resize=naive,letterbox` another grid than the README's (a smoke run)
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["encoder=clip,siglip,dinosiglip", "resize=naive,letterbox"]
PARALLEL = ["hydra/launcher=local", "hydra.launcher.parallel=2"]
TARGET = 1.5
JOB_S = "time/job_s"  # a job's own time, from its setup to its last evaluation (not its process start)


def env(work: Path) -> dict[str, str]:
    found = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "OMP_NUM_THREADS"}
    found["PYTHONPATH"] = str(REPO) + os.pathsep + found.get("PYTHONPATH", "")
    found["VLM_SWEEPS_CPU_REGISTRY"] = str(work / "cpu_registry")
    return found


def build_caches(work: Path, extra: list[str]) -> Path:
    """The synthetic world and the tokenizer of these settings, in a template cache folder."""
    cache = work / "template-cache"
    code = ("import sys; from pathlib import Path; from hydra import compose, initialize_config_dir; "
            "from vlm_sweeps.config import register_configs; from vlm_sweeps.data.synthetic import ensure_world; "
            "from vlm_sweeps.job import load_tokenizer; register_configs(); "
            "initialize_config_dir(sys.argv[1], version_base='1.3').__enter__(); "
            "cfg = compose('config', overrides=[f'paths.cache_dir={sys.argv[2]}', *sys.argv[3:]]); "
            "cache = Path(sys.argv[2]); load_tokenizer(cfg, ensure_world(cache, cfg.data.synthetic), cache)")
    subprocess.run([sys.executable, "-c", code, str(REPO / "conf"), str(cache), *extra], cwd=work, env=env(work),
                   check=True)
    return cache


def wait_for_load(max_load: float | None, patience_s: float) -> None:
    if max_load is None:
        return
    deadline = time.time() + patience_s
    while os.getloadavg()[0] > max_load and time.time() < deadline:
        print(f"  load {os.getloadavg()[0]:.2f} > {max_load}: waiting", flush=True)
        time.sleep(30)


def sweep(work: Path, name: str, template: Path, grid: list[str], args: list[str]) -> tuple[float, str]:
    """(wall seconds, tracking URI) of one sweep from a fresh folder with a copy of the template cache."""
    root = work / name
    shutil.copytree(template, root / "cache")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", "-m", *grid, *args, f"paths.root={root}",
                          f"tracking.uri={uri}"], cwd=work, env=env(work), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"the {name} sweep failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return wall, uri


def scores(uri: str, axes: list[str]) -> dict[tuple[str, ...], dict[str, float]]:
    """{(the run's options of `axes`): benchmark metrics and `time/job_s`} of the FINISHED job runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vlm_sweeps")
    runs = client.search_runs([exp.experiment_id], "tags.`vlm_sweeps.kind` = 'job' and attributes.status = 'FINISHED'")
    return {tuple(r.data.params[axis] for axis in axes):
            {k: v for k, v in r.data.metrics.items() if ("/" in k and not k.startswith(("train/", "time/")))
             or k == JOB_S}
            for r in runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", nargs="*", default=[], help="overrides added to both sweeps")
    ap.add_argument("--max-load", type=float, default=None,
                    help="before each sweep, wait until the 1-minute load average is below this")
    ap.add_argument("--patience-s", type=float, default=1800, help="how long --max-load waits at most")
    ap.add_argument("--sweep", nargs="+", default=SWEEP, help="the sweep's axes, AXIS=A,B,... (default: the README's)")
    args = ap.parse_args()
    axes = [axis.split("=", 1)[0] for axis in args.sweep]
    n_runs = math.prod(len(axis.split("=", 1)[1].split(",")) for axis in args.sweep)
    common = ["run.progress=false", *args.extra]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        template = build_caches(work, common)
        walls, found = {}, {}
        for name, launcher in (("sequential", []), ("parallel", PARALLEL)):
            wait_for_load(args.max_load, args.patience_s)
            before = os.getloadavg()
            walls[name], uri = sweep(work, name, template, args.sweep, [*common, *launcher])
            after = os.getloadavg()
            found[name] = scores(uri, axes)
            job_s = [m.get(JOB_S, float("nan")) for m in found[name].values()]
            print(f"{name:>10}: {walls[name]:7.1f} s for {len(found[name])} runs, "
                  f"{sum(job_s) / max(1, len(job_s)):.1f} s per job on average "
                  f"(load average before {before[0]:.2f}, after {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f})",
                  flush=True)
    assert len(found["sequential"]) == len(found["parallel"]) == n_runs, {k: len(v) for k, v in found.items()}
    diffs = [abs(found["sequential"][key].get(m, float("nan")) - value)
             for key, metrics in found["parallel"].items() for m, value in metrics.items() if m != JOB_S]
    print(f"scores of the parallel sweep vs the sequential one: max |difference| {max(diffs):.4g} "
          f"over {len(diffs)} benchmark metrics (one torch thread instead of two changes float rounding only)")
    ratio = walls["sequential"] / walls["parallel"]
    print(f"local_parallel: sequential {walls['sequential']:.1f} s / parallel=2 {walls['parallel']:.1f} s = "
          f"ratio {ratio:.2f} (target >= {TARGET})")


if __name__ == "__main__":
    main()
