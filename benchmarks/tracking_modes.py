"""Does the tracking process (vlm_sweeps/tracking_process.py) still pay for itself over MLflow's own
asynchronous logging? One tiny job per mode, from process start to its first training step and to
its end, alternating the modes over several rounds (warm caches: the synthetic world and tokenizer
are made before timing; every job has its own seed so none is skipped):

  process   tracking.process=true (default): MLflow imported and the store opened in a process of
            the job's own, started before torch is imported; curve points written without waiting
  inline    tracking.process=false: MLflow in the job's process, synchronous writes
  async     tracking.process=false with MLFLOW_ENABLE_ASYNC_LOGGING=true: MLflow's own asynchronous
            logging (a thread of MLflow's queues the writes)

Usage: python benchmarks/tracking_modes.py [--rounds 3] [--modes process inline async] [--extra OVERRIDE ...]
(about 1 minute per job on a 2-core CPU; --extra adds Hydra overrides to every job, e.g. smaller data)
Prints each job's figures and the medians per mode.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from job_overhead import _stamps  # noqa: E402  (the log-line parser of the per-job overhead benchmark)

MODES = {"process": ([], {}), "inline": (["tracking.process=false"], {}),
         "async": (["tracking.process=false"], {"MLFLOW_ENABLE_ASYNC_LOGGING": "true"})}
SETTINGS = ["run.progress=false", "benchmarks.max_examples=50"]


def one_job(cwd: Path, seed: int, mode: str, extra: list[str]) -> dict[str, float]:
    overrides, env = MODES[mode]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | env
    start = time.time()
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", f"seed={seed}", *SETTINGS, *extra, *overrides],
                         cwd=cwd, capture_output=True, text=True, env=environment)
    end = time.time()
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    log_file = max((cwd / ".vlm_sweeps" / "hydra").glob("run_*/run.log"), key=lambda p: p.stat().st_mtime)
    rows = _stamps(log_file)
    first_step = next(t for t, _, msg in rows if msg.startswith("stage finetune:") and "steps of" in msg)
    return {"to_first_step": first_step - start, "job": end - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES),
                        help="the modes to time (default: all; the first is the baseline of the last lines)")
    parser.add_argument("--extra", nargs="*", default=[], help="overrides added to every job")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in args.modes}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        one_job(cwd, 1000, "inline", args.extra)  # world, tokenizer, token cache, store schema: made once, untimed
        seed = 0
        for r in range(args.rounds):
            for mode in args.modes:
                seed += 1
                row = one_job(cwd, seed, mode, args.extra)
                results[mode].append(row)
                print(f"round {r + 1} {mode:<8} start -> first step {row['to_first_step']:5.1f} s, "
                      f"job {row['job']:5.1f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    base = statistics.median(r["job"] for r in results[args.modes[0]])
    base_name = "the tracking process's" if args.modes[0] == "process" else f"{args.modes[0]}'s"
    for mode, rows in results.items():
        first = statistics.median(r["to_first_step"] for r in rows)
        job = statistics.median(r["job"] for r in rows)
        print(f"median {mode:<8} start -> first step {first:5.1f} s   job {job:5.1f} s   "
              f"({job / base:.2f} x {base_name})")


if __name__ == "__main__":
    main()
