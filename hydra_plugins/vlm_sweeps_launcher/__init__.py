"""Hydra launcher plugin `hydra/launcher=slurm`: vlm_sweeps jobs on SLURM through submitit.

Hydra imports every module of the `hydra_plugins` namespace package on each run, so this package
stays light: the schema and a thin Launcher that hands over to `launchers.slurm` when it launches.
"""
