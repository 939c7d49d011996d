"""`hydra/launcher=local`: the schema of its options and the Launcher that Hydra instantiates.

Only hydra and dataclasses are imported here (Hydra imports this module on every run); submitit,
MLflow and the job code are loaded by `launch` (launchers/local.py). No `from __future__ import
annotations`: Hydra executes this module before putting it in sys.modules, where dataclasses
would look the string annotations up.
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class LocalLauncherConf:
    _target_: str = "hydra_plugins.vlm_sweeps_launcher.local_launcher.LocalLauncher"
    # jobs running at once, each in a process of its own: a number, or "auto" (one per GPU of
    # `gpus`; without GPUs one per CPU this process may use)
    parallel: Any = 1
    # GPUs the jobs are spread over, one per job (CUDA_VISIBLE_DEVICES): "auto" (this shell's
    # CUDA_VISIBLE_DEVICES, else every GPU `nvidia-smi -L` lists), a list of ids ([0, 2]), or []
    # (CPU jobs: no GPU visible to them)
    gpus: Any = "auto"
    # CPUs of each job (its affinity; torch threads follow, vlm_sweeps/cpu_share.py); None: the CPUs
    # this process may use (affinity, cgroup quota, SLURM_CPUS_PER_TASK) divided among `parallel`
    cpus_per_job: Optional[int] = None
    pin: bool = True  # pin each job's process to its CPUs; false: jobs share all CPUs (threads still split)
    skip_finished: bool = True  # start no process for jobs whose FINISHED run lacks nothing
    # submitit's pickles and each job's log (stdout and stderr in one file)
    submitit_folder: str = "${hydra.sweep.dir}/.submitit"
    timeout_min: Optional[int] = None  # a job running longer is stopped (USR2, then killed); None: no limit
    poll_s: float = 0.5  # how often the launcher looks for ended jobs
    # copy the code (the git working tree, dirty edits and untracked files included) into
    # <sweep dir>/.code/ at launch; jobs import it from there, so edits made meanwhile do not reach them
    snapshot: bool = True


ConfigStore.instance().store(group="hydra/launcher", name="local", node=LocalLauncherConf,
                             provider="vlm_sweeps")


class LocalLauncher(Launcher):
    """Runs the sweep's jobs on this machine, `parallel` at a time, each pinned to its CPUs or GPU."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from launchers.freeze import Composer

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        Composer.attach(hydra_context.config_loader)  # the sweeper's validation pass composes for us

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.vlm_sweeps_sweeper import plan
        from launchers.local import launch

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        # the sweep's size, for `job 3 of 6` (the sweeper launches in batches; its plan has them all)
        planned = plan.read(str(self.config.hydra.sweep.dir))
        total = sum(1 for job in planned["jobs"] if job.get("num") is not None) if planned else None
        return launch(self.params, self.config, self.hydra_context, self.task_function, job_overrides,
                      initial_job_idx, total=total)
