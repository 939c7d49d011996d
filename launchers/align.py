"""Shared align stages on SLURM: the two-stage jobs of a sweep grouped by align signature, and for
each group whose align checkpoint does not exist yet ONE align job, which its jobs depend on
(`afterok`), so none of them trains the align again, nor waits for it on a held allocation.

A group gets no align job of its own when its align checkpoint already exists (its jobs load it),
when an align job of an earlier submit is still queued or running for it (its jobs depend on that
one), or when it has fewer than `min_align_group` jobs to submit (the job aligns inside itself,
through the same shared checkpoint: an extra job would only add a queue wait and a model load).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vlm_sweeps.identity import align_signature
from vlm_sweeps.train.shared_align import ALIGN_FILE

from launchers.freeze import FrozenJob

# why a group has no align job of this submit (AlignEntry.skipped)
EXISTS, ACTIVE, INLINE = "exists", "active", "inline"
# sbatch flags of a job that depends on an align job: if the align fails, the dependency can never
# be satisfied, and SLURM cancels the job instead of leaving it PENDING (DependencyNeverSatisfied)
DEPENDENT_FLAGS = {"kill-on-invalid-dep": "yes"}


@dataclass
class AlignGroup:
    signature: str  # the align signature its jobs share
    path: Path  # <runs_dir>/align-<signature>/align.pt
    members: list[FrozenJob] = field(default_factory=list)
    skipped: str | None = None  # EXISTS | ACTIVE | INLINE: no align job of this submit
    job_id: str | None = None  # of the align job the members depend on (this submit's, or an earlier one)

    @property
    def config(self) -> dict:
        """What the align job runs: the first member's frozen config (all members share its align)."""
        return self.members[0].config

    @property
    def dependency(self) -> str | None:
        return f"afterok:{self.job_id}" if self.job_id else None


def align_path(config: dict, signature: str) -> Path:
    return Path(config["paths"]["runs_dir"]) / f"align-{signature}" / ALIGN_FILE


def group(jobs: list[FrozenJob], active: dict[str, str], min_group: int) -> list[AlignGroup]:
    """The jobs to submit that share an align (run.share_align and an align stage), by align
    signature, each group told whether it needs an align job (skipped None) or why not.
    `active`: {align signature: id of an align job of an earlier submit still queued or running}."""
    groups: dict[str, AlignGroup] = {}
    for job in jobs:
        if not job.config["run"].get("share_align", True):
            continue
        if job.resources.get("nodes", 1) * job.resources.get("tasks_per_node", 1) > 1:
            continue  # several processes: the job aligns itself (vlm_sweeps.train.shared_align.SharedAlign.of)
        signature = align_signature(job.view if job.view is not None else OmegaConf.create(job.config))
        if signature is None:
            continue
        if signature not in groups:
            groups[signature] = AlignGroup(signature, align_path(job.config, signature))
        groups[signature].members.append(job)
    for g in groups.values():
        if g.path.is_file():
            g.skipped = EXISTS
        elif g.signature in active:
            g.skipped, g.job_id = ACTIVE, active[g.signature]
        elif len(g.members) < min_group:
            g.skipped = INLINE
    return list(groups.values())


def dependent_parameters(params: dict[str, Any], dependency: str | None) -> dict[str, Any]:
    """submitit parameters of a job array that waits for an align job."""
    if dependency is None:
        return params
    extra = {**params.get("slurm_additional_parameters", {}), **DEPENDENT_FLAGS}
    return {**params, "slurm_dependency": dependency, "slurm_additional_parameters": extra}
