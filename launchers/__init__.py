"""How many jobs reach a machine: SLURM through submitit (`hydra/launcher=slurm`), several jobs at
once on this machine, each pinned to its CPUs or a GPU (`hydra/launcher=local`), and the
`python -m launchers status` view of a submitted sweep. The cluster test bed is `local_slurm.sh`.

Modules: `freeze` (one job's config, resolved at submit time), `resources` (resource classes),
`cluster` (SLURM queries), `store` (tracking-store lookups), `manifest` (what a submit recorded),
`align` (jobs sharing an align stage wait for one align job), `slurm` (the submit itself), `entry`
(what runs on the node), `local` (the local parallel launch), `status` (the table), `snapshot`
(the code a sweep's jobs import, copied at submit).
"""
