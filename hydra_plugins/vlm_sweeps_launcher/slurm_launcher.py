"""`hydra/launcher=slurm`: the schema of its options and the Launcher that Hydra instantiates.

Only hydra and dataclasses are imported here (Hydra imports this module on every run, local ones
included); submitit, MLflow and the job code are loaded by `launch`. No `from __future__ import
annotations`: Hydra executes this module before putting it in sys.modules, where dataclasses
would look the string annotations up.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class ResourcesConf:
    """What one job asks SLURM for (submitit's names)."""

    timeout_min: int = 60  # --time; USR2 comes signal_delay_s before it, then checkpoint + requeue
    nodes: int = 1
    tasks_per_node: int = 1  # GPU jobs: set to gpus_per_node (one process per GPU, launchers/resources.py)
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: Optional[float] = None  # None: the partition's default


def _default_classes() -> Dict[str, Any]:
    """Resource classes: jobs whose resolved config matches every `when` entry (dotted key ->
    value, or a list of accepted values) get `resources` on top of the base; classes apply in
    order, later ones win; one job array per class. Plain dicts (not a schema), so that a class
    can be added from the command line:
    `+hydra.launcher.resource_classes.big={when: {llm.name: [llama2_13b]}, resources: {mem_gb: 256}}`."""
    return {
        # pretrained 7B-class models: one GPU per job
        "gpu": {"when": {"scale.name": "full"},
                "resources": {"gpus_per_node": 1, "cpus_per_task": 8, "mem_gb": 64, "timeout_min": 720}},
        # 13B LLMs (Llama-2 13B, Vicuna 13B: 5120 wide, 40 layers): two GPUs (two tasks, one per GPU,
        # sharding the model: run.parallel=auto is fsdp) and more host memory
        "llm_13b": {"when": {"scale.name": "full", "llm.config.hidden_size": 5120, "llm.config.num_hidden_layers": 40},
                    "resources": {"gpus_per_node": 2, "tasks_per_node": 2, "cpus_per_task": 8, "mem_gb": 128}},
    }


@dataclass
class SlurmLauncherConf:
    _target_: str = "hydra_plugins.vlm_sweeps_launcher.slurm_launcher.SlurmLauncher"
    # submitit's pickles and logs; must be on a file system the nodes share
    submitit_folder: str = "${hydra.sweep.dir}/.submitit"
    wait: bool = False  # false: submit and return; true: wait for every job, fail if one failed
    skip_finished: bool = True  # leave out jobs whose signature has a FINISHED run in the store
    skip_active: bool = True  # leave out jobs whose signature is queued or running from an earlier submit
    # Two-stage jobs sharing an align stage (same align signature, run.share_align) wait for ONE align
    # job that trains it (afterok), when at least this many of them are submitted; fewer align
    # inside their job (through the same shared checkpoint). Large: never an align job.
    min_align_group: int = 2
    job_name: str = "vlm_sweeps"
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    resources: ResourcesConf = field(default_factory=ResourcesConf)
    resource_classes: Dict[str, Any] = field(default_factory=_default_classes)
    array_parallelism: int = 256  # tasks of one array running at once (sbatch --array=...%N)
    max_array_size: Optional[int] = None  # tasks per array; None: the cluster's MaxArraySize
    max_num_timeout: int = 3  # requeues after a time-out (preemptions do not count)
    signal_delay_s: int = 90  # USR2 this long before the time limit
    setup: List[str] = field(default_factory=list)  # shell lines run before the job (module load ...)
    sbatch_flags: Dict[str, Any] = field(default_factory=dict)  # extra flags: {constraint: a100, hold: true}
    srun_args: List[str] = field(default_factory=list)
    python: Optional[str] = None  # command that starts python on the nodes; None: this interpreter
    # copy the code (the git working tree, dirty edits and untracked files included) into
    # <sweep dir>/.code/ at submit; jobs (and their requeues) import it from there, so a job queued for
    # days runs the code it was submitted with (launchers/snapshot.py); the sweep dir must be on a shared disk
    snapshot: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="slurm", node=SlurmLauncherConf,
                             provider="vlm_sweeps")


class SlurmLauncher(Launcher):
    """Freezes each job's config, skips finished work, submits the rest as job arrays."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from launchers.freeze import Composer

        # the task function is not shipped: jobs run vlm_sweeps.job.run_job on their frozen config
        self.config = config
        self.hydra_context = hydra_context
        Composer.attach(hydra_context.config_loader)  # the sweeper's validation pass composes for us

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from launchers.slurm import launch

        assert self.config is not None and self.hydra_context is not None
        return launch(self.params, self.config, self.hydra_context, job_overrides, initial_job_idx)
