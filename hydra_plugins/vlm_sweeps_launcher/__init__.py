"""Hydra launcher plugins: `hydra/launcher=slurm` (vlm_sweeps jobs on SLURM through submitit) and
`hydra/launcher=local` (several jobs at once on this machine, each pinned to its CPUs or a GPU).

Hydra imports every module of the `hydra_plugins` namespace package on each run, so this package
stays light: the schemas and thin Launchers that hand over to `launchers.slurm` / `launchers.local`
when they launch.
"""
