"""What one `-m ... hydra/launcher=slurm` recorded: per job its signature, overrides, axes, resource
class and SLURM job id (or why it was not submitted), and the shared align jobs they depend on. One JSON file per sweep under
`<paths.root>/slurm/`, written atomically; `python -m launchers status` reads it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vlm_sweeps.atomic import atomic_write_text

SUBDIR = "slurm"


@dataclass
class JobEntry:
    num: int
    signature: str
    overrides: list[str]
    axes: dict[str, str]
    resource_class: str = "default"
    job_id: str | None = None  # SLURM id (`<array>_<index>`) when submitted
    skipped: str | None = None  # why not submitted: finished | active | duplicate
    run_id: str | None = None  # the FINISHED run that made it skip
    align_signature: str | None = None  # of its align stage, when it shares one (launchers.align)
    depends_on: str | None = None  # the align job it waits for (afterok)
    evaluate_only: list[str] | None = None  # trained already (run_id): the job evaluates these benchmarks only


@dataclass
class AlignEntry:
    """A shared align stage the sweep's jobs need: its align job, or why it got none."""

    align_signature: str
    path: str  # its align.pt
    members: list[int]  # nums of the jobs that share it
    resource_class: str = "default"
    job_id: str | None = None  # the align job (of this submit, or of an earlier one when skipped=active)
    skipped: str | None = None  # no align job of this submit: exists | active | inline


@dataclass
class Manifest:
    sweep_id: str
    submitted_at: str
    tracking_uri: str
    experiment: str
    submitit_folder: str
    root: str  # paths.root of the jobs
    jobs: list[JobEntry] = field(default_factory=list)
    aligns: list[AlignEntry] = field(default_factory=list)
    code: str | None = None  # the code snapshot the jobs import (launchers/snapshot.py); None: the code on disk

    def path(self) -> Path:
        return folder(self.root) / f"{self.sweep_id}.json"


def folder(root: str | Path) -> Path:
    return Path(root) / SUBDIR


def write(manifest: Manifest) -> Path:
    return atomic_write_text(manifest.path(), json.dumps(asdict(manifest), indent=1))


def read(path: Path) -> Manifest:
    data: dict[str, Any] = json.loads(path.read_text())
    jobs = [JobEntry(**j) for j in data.pop("jobs")]
    aligns = [AlignEntry(**a) for a in data.pop("aligns", [])]  # absent from older manifests
    return Manifest(**data, jobs=jobs, aligns=aligns)


def all_sweeps(root: str | Path) -> list[Path]:
    """Manifests under a root, oldest first."""
    return sorted(folder(root).glob("*.json"), key=lambda p: p.stat().st_mtime)


def find(root: str | Path, sweep_id: str | None) -> Manifest:
    """The manifest of `sweep_id` (the latest sweep when None)."""
    paths = all_sweeps(root)
    if not paths:
        raise FileNotFoundError(f"no SLURM sweep recorded under {folder(root)}: submit one with "
                                "`python -m vlm_sweeps.run -m ... hydra/launcher=slurm`, or pass --root")
    if sweep_id is None:
        return read(paths[-1])
    path = folder(root) / f"{sweep_id}.json"
    if not path.is_file():
        known = ", ".join(p.stem for p in paths[-10:])
        raise FileNotFoundError(f"no sweep {sweep_id!r} under {folder(root)}; recent: {known}")
    return read(path)
