"""Resources per job, derived from its config: a base request plus the resource classes whose
`when` matches (e.g. scale=full -> a GPU; a 13B LLM -> two). Jobs that ask for the same
resources share one job array; arrays are cut at the cluster's array limit.

A job with GPUs runs one task (process) per GPU: `tasks_per_node = gpus_per_node`, on `nodes`
nodes. Its processes find each other through SLURM's variables and train data-parallel
(`run.parallel`, vlm_sweeps/train/distributed.py); one GPU is one process, as before."""

from __future__ import annotations

from typing import Any, Iterator, Sequence, TypeVar

T = TypeVar("T")
_MISSING = object()

# launcher option -> submitit parameter, for the options that go into every array of a sweep
SLURM_OPTIONS = {"partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos",
                 "job_name": "name", "array_parallelism": "slurm_array_parallelism",
                 "signal_delay_s": "slurm_signal_delay_s", "setup": "slurm_setup",
                 "sbatch_flags": "slurm_additional_parameters", "srun_args": "slurm_srun_args"}


def lookup(config: dict, dotted: str) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def matches(config: dict, when: dict[str, Any]) -> bool:
    """Every `when` entry holds: the value at the dotted key equals it, or is one of a list."""
    for key, accepted in when.items():
        value = lookup(config, key)
        options = accepted if isinstance(accepted, (list, tuple)) else [accepted]
        if value is _MISSING or value not in options:
            return False
    return True


def resources_for(config: dict, base: dict[str, Any], classes: dict[str, dict]) -> tuple[str, dict[str, Any]]:
    """(class name, resources) of one job: the base, then each matching class in order."""
    resources = dict(base)
    names = []
    for name, rule in classes.items():
        if rule is None:  # a class switched off: `hydra.launcher.resource_classes.NAME=null`
            continue
        if not isinstance(rule, dict) or set(rule) - {"when", "resources"}:
            raise ValueError(f"hydra.launcher.resource_classes.{name}: expected {{when: {{...}}, resources: {{...}}}}, "
                             f"got {rule!r}")
        unknown = sorted(set(rule.get("resources", {})) - set(base))
        if unknown:
            raise ValueError(f"hydra.launcher.resource_classes.{name}: unknown resources {unknown}; "
                             f"known: {', '.join(sorted(base))}")
        if matches(config, rule.get("when", {})):
            resources.update(rule.get("resources", {}))
            names.append(name)
    return "+".join(names) or "default", one_task_per_gpu(resources)


def one_task_per_gpu(resources: dict[str, Any]) -> dict[str, Any]:
    """GPU jobs get as many tasks per node as GPUs (each process drives one GPU); CPU jobs keep
    their `tasks_per_node` (several CPU tasks also train data-parallel, over gloo)."""
    gpus = resources.get("gpus_per_node") or 0
    return {**resources, "tasks_per_node": gpus} if gpus >= 1 and "tasks_per_node" in resources else resources


def world_size(resources: dict[str, Any]) -> int:
    """The number of processes of one job: its SLURM_NTASKS."""
    return int(resources.get("nodes") or 1) * int(resources.get("tasks_per_node") or 1)


def class_key(resources: dict[str, Any]) -> tuple:
    return tuple(sorted(resources.items()))


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError(f"array size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start:start + size]


def executor_parameters(options: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """submitit `update_parameters` kwargs for one resource class. No GPU request at all for CPU
    jobs: `--gpus-per-node=0` is an error on clusters without GPU gres."""
    params = {k: v for k, v in resources.items() if v is not None and not (k == "gpus_per_node" and v == 0)}
    params.update({SLURM_OPTIONS[k]: v for k, v in options.items()
                   if k in SLURM_OPTIONS and v not in (None, [], {})})
    return params
