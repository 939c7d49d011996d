"""The plan of a sweep: each job composed as its launcher will compose it, its signature and axes,
and whether the tracking store already holds it FINISHED; printed before anything launches and
kept as `<sweep dir>/plan.json`, which the sweep's comparison table (vlm_sweeps.tracking
SweepCallback) reads at the multirun's end.

The store is only read: an absent sqlite file or experiment means nothing finished.
No `from __future__ import annotations` (see expand.py).
"""

import json
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from hydra_plugins.vlm_sweeps_sweeper.expand import Job

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"


@dataclass
class PlannedJob:
    overrides: List[str]
    signature: str
    axes: Dict[str, str]  # naming.AXIS_TABLE's axes, as the job logs them
    uri: str  # the job's tracking store and experiment
    experiment: str
    label: Optional[str] = None
    section: Optional[str] = None
    seed: Optional[int] = None
    num: Optional[int] = None  # Hydra's job number; None: a duplicate, not launched
    duplicate_of: Optional[int] = None  # the launched job with the same signature
    finished_run: Optional[str] = None  # the FINISHED run of this signature in the store, if any
    config: Optional[DictConfig] = field(default=None, repr=False, compare=False)  # compose(keep_configs=True)


def task_view(sweep_config: DictConfig) -> DictConfig:
    """The job's config without the `hydra` node (which holds values only a launched job has)."""
    return OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])


def compose(loader: Any, master: DictConfig, jobs: Sequence[Job], keep_configs: bool = False) -> List[PlannedJob]:
    """Each job's config through the sweep's config loader (the SLURM launcher keeps these
    compositions for its own pass), its signature and axes; jobs with a signature already in the
    list are marked duplicates and not numbered."""
    from vlm_sweeps import identity, tracking
    from vlm_sweeps.job import axes_of

    planned: List[PlannedJob] = []
    first: Dict[str, PlannedJob] = {}
    for job in jobs:
        # Hydra's sweeper validation pass (Sweeper.validate_batch_is_legal), with its argument names
        cfg = task_view(loader.load_sweep_config(master_config=master, sweep_overrides=list(job.overrides)))
        p = PlannedJob(list(job.overrides), identity.signature(cfg), axes_of(cfg),
                       tracking.resolve_uri(cfg.tracking.uri), str(cfg.tracking.experiment),
                       job.label, job.section, job.seed, config=cfg if keep_configs else None)
        if p.signature in first:
            p.duplicate_of = first[p.signature].num
        else:
            p.num = len(first)
            first[p.signature] = p
        planned.append(p)
    return planned


def look_up_finished(planned: Sequence[PlannedJob]) -> Optional[str]:
    """Fill `finished_run` from the tracking store (read-only); returns a problem to report, if any."""
    from vlm_sweeps import naming, tracking

    by_store: Dict[tuple, List[PlannedJob]] = {}
    for p in planned:
        by_store.setdefault((p.uri, p.experiment), []).append(p)
    for (uri, experiment), group in by_store.items():
        database = tracking.sqlite_file(uri)
        if database is not None and not database.is_file():
            continue  # no store yet: nothing finished (and none is created here)
        try:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                continue
            for p in group:
                runs = client.search_runs([exp.experiment_id], filter_string=(
                    f"tags.`{naming.TAG_SIGNATURE}` = '{p.signature}' and tags.`{naming.TAG_KIND}` = "
                    f"'{naming.KIND_JOB}' and attributes.status = 'FINISHED'"), max_results=1)
                p.finished_run = runs[0].info.run_id if runs else None
        except Exception as err:  # the plan informs; the jobs find their runs themselves
            from vlm_sweeps.redact import redact_uri

            return f"the store {redact_uri(uri)} could not be read ({type(err).__name__}: {err}); states unknown"
    return None


def table(planned: Sequence[PlannedJob], columns: Sequence[str]) -> List[str]:
    """The plan as aligned text rows: job number, what it is, the axes that vary, seed, signature, state."""
    from vlm_sweeps import naming

    design = [a for a in naming.design_axes() if a in planned[0].axes] if planned else []
    varying = [a for a in design if len({p.axes[a] for p in planned}) > 1] or design
    head = ["#", *columns, *varying, *(["seed"] if any(p.seed is not None for p in planned) else []),
            "signature", "state"]
    rows = [head]
    for p in planned:
        what = {"experiment": p.label or "", "section": p.section or "", "ablates": p.label or ""}
        state = (f"same model as job {p.duplicate_of}: not launched" if p.duplicate_of is not None
                 else f"FINISHED run {p.finished_run}" if p.finished_run else "to run")
        rows.append(["-" if p.num is None else str(p.num), *[what[c] for c in columns],
                     *[p.axes[a] for a in varying], *([str(p.seed)] if "seed" in head else []), p.signature, state])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def write(planned: Sequence[PlannedJob], sweep_dir: Path, header: Dict[str, Any]) -> Path:
    """`<sweep dir>/plan.json`: the jobs of this sweep (duplicates included), overrides redacted."""
    from vlm_sweeps.redact import redact_tree, redact_uri

    jobs = []
    for p in planned:
        row = {f.name: getattr(p, f.name) for f in fields(p) if f.name != "config"}
        row["overrides"] = redact_tree(list(p.overrides))
        row["uri"] = redact_uri(p.uri)
        jobs.append(row)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    path = sweep_dir / PLAN_FILE
    tmp = path.with_name(PLAN_FILE + ".tmp")
    tmp.write_text(json.dumps({**header, "jobs": jobs}, indent=1))
    tmp.replace(path)
    return path


def read(sweep_dir: Path) -> Optional[Dict[str, Any]]:
    """The plan a sweep wrote, or None (another sweeper, or a dry plan). (vlm_sweeps.tracking reads
    the same file on its own: vlm_sweeps does not import this package.)"""
    path = Path(sweep_dir) / PLAN_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
