"""Hydra sweeper plugin `hydra/sweeper=ablation` (and `grid`, which `hydra/sweeper=basic` names in
conf/hydra/sweeper/basic.yaml): one-axis-at-a-time ablations around a baseline, studies from
conf/study/ (the paper's registry of experiments), replicates over seeds, and the plan of jobs printed
before anything launches.

Hydra imports every module of the `hydra_plugins` namespace package on each run, so these modules
import only hydra, omegaconf and the standard library at the top; MLflow and the job code are
imported when a sweep is planned.
"""
