"""How often the report's verdicts are false, and how often a planted effect is found
(analysis/calibration.py), with the default test (paired t) and correction (Holm) at alpha 0.01.

- A/A on generated sweeps: the README sweep with seed=0,1,2, nothing planted, seeds relabelled at
  random as replicates and compared as an axis: the share of resamples with no verdict.
- Planted effects on generated sweeps: one benchmark `delta` points worse under one option, for
  1 and 3 seeds: the share of sweeps that give it its verdict, and the share with any other verdict.
- With --tracking-uri: the A/A check of a real store (a sweep run with seed=0,1,2).

Usage: python benchmarks/calibration.py [--tracking-uri sqlite:///mlflow.db] [--sweeps 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from analysis.calibration import aa_check, detections, simulate_sweep

BASE = {"synth_vqa": 65.0, "synth_count": 60.0, "synth_spatial": 60.0, "synth_pope": 60.0,
        "synth_ref": 3.0, "synth_text": 20.0, "synth_shape": 70.0, "synth_margin": 80.0,
        "synth_fine": 70.0}
GRID = {"encoder": ["clip", "siglip", "dinosiglip"], "resize": ["letterbox", "naive"]}
TARGET = ("resize", "naive", "synth_shape")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracking-uri")
    ap.add_argument("--sweeps", type=int, default=200)
    args = ap.parse_args()
    aa = aa_check(simulate_sweep(GRID, 3, BASE, rng=np.random.default_rng(0)), resamples=args.sweeps)
    print(f"A/A, generated sweep with seed=0,1,2: no verdict in {aa.share_clean:.1%} of "
          f"{aa.resamples} resamples")
    null = detections(args.sweeps, lambda rng: simulate_sweep({"replicate": ["a", "b"], **GRID}, 1, BASE,
                                                                interaction_sd=0.0, rng=rng), None)
    print(f"A/A, {args.sweeps} generated sweeps with every axis null: any verdict in {null['other']:.1%}")
    for seeds in (1, 3):
        for delta in (5.0, 10.0, 15.0, 30.0):
            rates = detections(args.sweeps // 2, lambda rng: simulate_sweep(
                GRID, seeds, BASE, {TARGET: -delta}, rng=rng), TARGET, direction="worse")
            print(f"planted {delta:>4.0f} points, {seeds} seed(s) ({3 * seeds} pairs): found in "
                  f"{rates['detected']:.0%}, another verdict in {rates['other']:.0%}")
    if args.tracking_uri:
        from analysis import load_store

        real = aa_check(load_store(args.tracking_uri), resamples=args.sweeps)
        print(f"A/A, {args.tracking_uri}: no verdict in {real.share_clean:.1%} of {real.resamples} "
              f"resamples; false verdicts per metric: {real.false_verdicts[real.false_verdicts > 0].to_dict()}")


if __name__ == "__main__":
    main()
