"""Wall time of the tiny sweep `llm=llama2,vicuna_v15,mistral epochs=1,2` (6 runs, one frozen
encoder) without and with the frozen-feature cache, measured in one run of this script, and a check
that both sweeps log equal metrics.

Each sweep is one `python -m vlm_sweeps.run -m ...` process with its own tracking store and its own
cache folder, in which the synthetic world and tokenizer are generated before timing starts: both
sweeps start with no frozen features and no tokenized records (data/token_cache.py, on in both),
so that they differ in the feature cache alone. The cached sweep's first run computes every
image's features and the other five read them.

Usage: python benchmarks/sweep_cache.py [--extra OVERRIDE ...] [--sweep AXIS=OPTIONS ...] [--no-warmup]
    (about 20 minutes on a 2-core CPU; for a smoke run `--sweep llm=llama2 epochs=1,2` another grid, and
    --no-warmup: each sweep's first job generates the world and tokenizer, inside its timing)
The last line is the headline: the uncached / cached wall-time ratio.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["llm=llama2,vicuna_v15,mistral", "epochs=1,2"]


def run(cwd: Path, args: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "vlm_sweeps.run", *args], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - start


def metrics(uri: str, axes: list[str]) -> dict[tuple[str, ...], dict[str, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vlm_sweeps")
    runs = client.search_runs([exp.experiment_id], "tags.`vlm_sweeps.kind` = 'job'")
    return {tuple(r.data.params[axis] for axis in axes): r.data.metrics for r in runs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--extra", nargs="*", default=[], help="overrides added to both sweeps")
    ap.add_argument("--sweep", nargs="+", default=SWEEP, help="the sweep's axes, AXIS=A,B,... (default: 6 runs)")
    ap.add_argument("--no-warmup", action="store_true", help="no untimed job that makes the world and tokenizer first")
    args = ap.parse_args()
    axes = [axis.split("=", 1)[0] for axis in args.sweep]
    n_runs = math.prod(len(axis.split("=", 1)[1].split(",")) for axis in args.sweep)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        common = ["run.progress=false", *args.extra]
        walls, found = {}, {}
        for name, switch in (("uncached", "run.feature_cache=false"), ("cached", "run.feature_cache=true")):
            # the world and tokenizer, outside the timings (a fractional epoch: its tokens are not
            # saved; a 0-epoch job would still train 1 step)
            own = [*common, f"paths.root={cwd / name}"]
            if not args.no_warmup:
                run(cwd, [*own, "epochs=0.01", "benchmarks.max_examples=1", "run.feature_cache=false",
                          f"tracking.uri=sqlite:///{cwd / name}-warmup.db"])
            uri = f"sqlite:///{cwd / name}.db"
            walls[name] = run(cwd, ["-m", *args.sweep, *own, switch, f"tracking.uri={uri}"])
            found[name] = metrics(uri, axes)
            print(f"{name:>8}: {walls[name]:7.1f} s for {len(found[name])} runs", flush=True)
    assert len(found["cached"]) == len(found["uncached"]) == n_runs, {k: len(v) for k, v in found.items()}
    def results(m: dict[str, float]) -> dict[str, float]:  # not the timings: those are what differs
        return {k: v for k, v in m.items() if not k.startswith("time/") and k != "train/samples_per_s"}

    unequal = {key: sorted(k for k in results(found["uncached"][key]) | results(found["cached"][key])
                           if results(found["uncached"][key]).get(k) != results(found["cached"][key]).get(k))
               for key in found["uncached"] if results(found["uncached"][key]) != results(found["cached"][key])}
    compared = len(results(next(iter(found["cached"].values()))))
    for key in sorted(found["cached"]):
        m = found["cached"][key]
        label = " ".join([*(f"{axis}={value:<11}" for axis, value in zip(axes[:-1], key[:-1])), f"{axes[-1]}={key[-1]}"])
        print(f"  {label}: synth_vqa/accuracy {m.get('synth_vqa/accuracy', float('nan')):.3f}"
              f"  train {m.get('time/train_finetune_s', float('nan')):5.1f} s (cached)"
              f" vs {found['uncached'][key].get('time/train_finetune_s', float('nan')):5.1f} s (uncached)")
    print(f"metrics equal with and without the cache ({compared} per run: benchmarks, train/loss, train/lr):",
          f"yes, all {n_runs} runs" if not unequal else f"NO: {unequal}")
    print(f"sweep_cache: uncached {walls['uncached']:.1f} s / cached {walls['cached']:.1f} s = "
          f"ratio {walls['uncached'] / walls['cached']:.2f}")


if __name__ == "__main__":
    main()
