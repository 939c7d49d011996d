"""How long does submitting a 100-job sweep to SLURM take? (It must not wait for the jobs.)

    python benchmarks/submit_100.py [--seeds [--count 100]]

Submits `python -m vlm_sweeps.run -m <100 combinations> hydra/launcher=slurm` from a fresh
directory (fresh MLflow store) to the local test cluster, held (`sbatch --hold`) so nothing runs,
checks that 100 array tasks are queued, cancels them. The default grid crosses design axes
(5 encoders x 2 resizes x 2 optimizations x 5 LLMs: 100 distinct compositions); `--seeds` sweeps
100 seeds of one configuration instead (`--count N`: N seeds, a smoke run with a few). Uses the
cluster that $SLURM_CONF names, else starts one with launchers/local_slurm.sh (and stops it after).
The last line prints the headline figure: the wall time of the whole command, from the shell's
point of view.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = ["encoder=clip,siglip,dinov2,in1k,dinosiglip", "resize=naive,letterbox",
        "optimization=single_stage,two_stage", "llm=llama2,vicuna_v15,mistral,phi2,llama2_13b"]
COUNT = 100


def cluster_env(scratch: Path) -> tuple[dict[str, str], Path | None]:
    """(environment with SLURM_CONF, folder of a cluster this script started or None)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if env.get("SLURM_CONF") and subprocess.run(["scontrol", "ping"], env=env, capture_output=True).returncode == 0:
        return env, None
    folder = scratch / "slurm"
    up = subprocess.run(["bash", str(REPO / "launchers" / "local_slurm.sh"), "up", str(folder)],
                        capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
    for line in up.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env, folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", action="store_true", help="100 seeds of one config instead of the axis grid")
    parser.add_argument("--count", type=int, default=COUNT, help="with --seeds: how many seeds (default 100)")
    args = parser.parse_args()
    if args.count != COUNT and not args.seeds:
        parser.error("--count needs --seeds (the axis grid is 100 jobs)")
    with tempfile.TemporaryDirectory(prefix="submit_100_") as tmp:
        scratch = Path(tmp)
        env, started = cluster_env(scratch)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        cwd = scratch / "cwd"
        cwd.mkdir()
        command = [sys.executable, "-m", "vlm_sweeps.run", "-m", *([f"seed=range({args.count})"] if args.seeds else GRID),
                   "hydra/launcher=slurm", "+hydra.launcher.sbatch_flags.hold=true"]
        try:
            t0 = time.perf_counter()
            out = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
                return 1
            line = next(l for l in out.stdout.splitlines() if " jobs to SLURM in " in l)
            array = re.search(r"array (\d+): ", out.stdout).group(1)
            queued = subprocess.run(["squeue", "-h", "-r", "-j", array, "-o", "%i"], env=env, capture_output=True,
                                    text=True, check=True).stdout.split()
            subprocess.run(["scancel", array], env=env, check=True)
            print(line)
            print(f"squeue: {len(queued)} array tasks of job {array} queued (held; cancelled now)")
            assert len(queued) == args.count, queued
        finally:
            if started is not None:
                subprocess.run(["bash", str(REPO / "launchers" / "local_slurm.sh"), "down", str(started)],
                               capture_output=True, stdin=subprocess.DEVNULL)
    print(f"submit_100: {wall:.1f} s from the shell for {args.count} jobs queued "
          f"({f'{args.count} seeds' if args.seeds else '5x2x2x5 axis grid'}, fresh MLflow store, 2-core machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
