"""How long does the analysis take on a big sweep? A synthetic store of 1,000 FINISHED job runs.

    python benchmarks/analysis_report.py [--runs 1000] [--store DIR] [--out DIR]

Builds (once; reused when `--store` already holds it) a real MLflow sqlite store shaped like the
jobs' output: a sweep parent, job runs over encoder x resize x optimization x llm x seeds, axis
params plus ~30 dotted config params, six synthetic benchmarks (headline and secondary metrics)
and training curves. Then times, separately: loading the runs (`load_store`), the statistics
(`analyze`) and rendering every figure and table (`write_report`). The last line prints the
headline figure.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from analysis import analyze, load_store, write_report  # noqa: E402
from vlm_sweeps import naming  # noqa: E402

GRID = {
    "encoder": ["clip", "siglip", "dinov2", "in1k", "dinosiglip"],
    "resize": ["naive", "letterbox"],
    "optimization": ["single_stage", "two_stage", "full_finetune", "two_stage_full_finetune"],
    "llm": ["llama2", "llama2_chat", "vicuna_v15", "mistral", "phi2"],
}
BENCHMARKS = ["synth_vqa", "synth_count", "synth_spatial", "synth_pope", "synth_ref", "synth_text"]
EXPERIMENT = "vlm_sweeps"


def build_store(folder: Path, runs: int) -> str:
    """Fill a fresh sqlite store with `runs` FINISHED job runs; returns its tracking URI."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=str(folder / "artifacts"))
    parent = client.create_run(exp, tags={naming.TAG_KIND: naming.KIND_SWEEP,
                                          naming.TAG_SWEEP_ID: "bench"}).info.run_id
    rng = random.Random(0)
    effect = {(axis, opt): rng.uniform(-0.08, 0.08) for axis, opts in GRID.items() for opt in opts}
    configs = list(itertools.product(*GRID.values()))
    for i in range(runs):
        values, seed = configs[i % len(configs)], i // len(configs)
        config = dict(zip(GRID, values), epochs="1.0", data="synthetic", scale="tiny", seed=seed)
        rid = client.create_run(exp, tags={
            naming.TAG_KIND: naming.KIND_JOB, naming.TAG_SWEEP_ID: "bench",
            "mlflow.parentRunId": parent, naming.TAG_SIGNATURE: f"sig{i:05d}"}).info.run_id
        now = int(time.time() * 1000)
        params = [Param(k, str(v)) for k, v in config.items()]
        params += [Param(f"{group}.field{j}", str(j)) for group in ("encoder", "llm", "optimizer")
                   for j in range(10)]
        shift = sum(effect[(a, v)] for a, v in zip(GRID, values))
        metrics = [Metric(naming.headline_metric(b), min(max(0.5 + shift * (k + 1) / 3
                          + rng.gauss(0, 0.01), 0.0), 1.0), now, 0)
                   for k, b in enumerate(BENCHMARKS)]
        metrics += [Metric(f"{b}/n_examples", 256, now, 0) for b in BENCHMARKS]
        metrics += [Metric(naming.TRAIN_LOSS, 3.0 / (s + 1), now, s) for s in range(5)]
        client.log_batch(rid, metrics=metrics, params=params)
        client.set_terminated(rid)
    client.set_terminated(parent)
    return uri


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--store", type=Path, help="folder of the store (reused if it exists)")
    p.add_argument("--out", type=Path, help="report folder (default: a temporary one)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = tempfile.TemporaryDirectory()
    folder = args.store or Path(tmp.name) / "store"
    out = args.out or Path(tmp.name) / "report"
    folder.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    if (folder / "mlflow.db").exists():
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        print(f"reusing store {uri}")
    else:
        uri = build_store(folder, args.runs)
        print(f"built store with {args.runs} runs in {time.perf_counter() - t0:.1f} s")

    t1 = time.perf_counter()
    results = load_store(uri, EXPERIMENT)
    t2 = time.perf_counter()
    analysis = analyze(results)
    t3 = time.perf_counter()
    files = write_report(analysis, out)
    t4 = time.perf_counter()
    print(f"load_store : {t2 - t1:6.2f} s  ({len(results.runs)} runs, axes {results.axes})")
    print(f"analyze    : {t3 - t2:6.2f} s  ({len(analysis.summary)} configurations)")
    print(f"write_report: {t4 - t3:5.2f} s  ({len(files)} files in {out})")
    print(f"{len(results.runs)} runs: load {t2 - t1:.2f} s, analyse {t3 - t2:.2f} s, "
          f"render {t4 - t3:.2f} s, total {t4 - t1:.2f} s")
    tmp.cleanup()


if __name__ == "__main__":
    main()
