"""Per-job overhead of a default tiny job: seconds from process start to its first training step,
and that overhead's share of the whole job. Runs `python -m vlm_sweeps.run` twice in a fresh folder:
cold (the synthetic world and tokenizer are generated) and warm (they are cached; another seed, so
the job is not skipped). The breakdown comes from the job's own log lines and `time/*` metrics.

Usage: python benchmarks/job_overhead.py [--extra OVERRIDE ...]   (about 2.5 minutes on a 2-core CPU;
    --extra adds Hydra overrides to both jobs, e.g. smaller synthetic data for a smoke run)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[([^\]]+)\]\[\w+\] - (.*)$")


def _stamps(log_file: Path) -> list[tuple[float, str, str]]:
    rows = []
    for line in log_file.read_text().splitlines():
        m = STAMP.match(line)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            rows.append((t, m.group(2), m.group(3)))
    return rows


def one_job(cwd: Path, seed: int, extra: list[str]) -> dict[str, float]:
    start = time.time()
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", f"seed={seed}", "run.progress=false", *extra],
                         cwd=cwd, capture_output=True, text=True)
    end = time.time()
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    log_file = max((cwd / ".vlm_sweeps" / "hydra").glob("run_*/run.log"), key=lambda p: p.stat().st_mtime)
    rows = _stamps(log_file)
    # the job's first log line is its MLflow run being created: before it, interpreter start,
    # imports, Hydra composition, validation and opening (or creating) the tracking store
    tracked = next(t for t, _, msg in rows if "-> MLflow run" in msg)
    first_step = next(t for t, _, msg in rows if msg.startswith("stage finetune:") and "steps of" in msg)
    return {"imports_compose_store": tracked - start, "data_tokenizer_model": first_step - tracked,
            "to_first_step": first_step - start, "job": end - start}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", nargs="*", default=[], help="overrides added to both jobs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        results = {"cold": one_job(cwd, 7, args.extra), "warm": one_job(cwd, 8, args.extra)}
    for name, r in results.items():
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in r.items() if k not in ("to_first_step", "job"))
        print(f"{name}: start -> first training step {r['to_first_step']:.1f} s of {r['job']:.1f} s "
              f"({100 * r['to_first_step'] / r['job']:.0f}%): {parts}")
    warm = results["warm"]
    print(f"per-job overhead (warm cache): {warm['to_first_step']:.1f} s, "
          f"{100 * warm['to_first_step'] / warm['job']:.0f}% of a {warm['job']:.0f} s tiny job")


if __name__ == "__main__":
    main()
