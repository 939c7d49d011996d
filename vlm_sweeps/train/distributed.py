"""Data-parallel training over several processes (DDP or FSDP) through torch.distributed.

The processes of one job find each other from their environment: torchrun's variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or SLURM's (one task per GPU, as the launcher
submits multi-GPU jobs; through submitit's `TorchDistributedEnvironment`). One process is a no-op:
nothing is initialised and training is exactly the single-process code path.

How a step is split, so that the result equals one process training the whole batch:
- every rank takes its contiguous slice of the global batch (the batches are a pure function of
  seed and step, so every rank computes the same ones) and cuts it into micro-batches as usual;
- the loss of every micro-batch is its summed token loss divided by the GLOBAL target-token count
  (all-reduced), and is multiplied by the world size before backward because DDP and FSDP average
  gradients over ranks: the reduced gradient is then the whole batch's;
- ranks run the same number of forward/backward passes (FSDP's collectives run in each one): a rank
  with fewer micro-batches pads with a "blank" one, a sample whose labels are all ignored
  (zero loss, zero gradient).
DDP wraps the model per stage (it registers hooks on the parameters that train in that stage);
FSDP (FSDP2 `fully_shard`: each LLM decoder layer, then the root) shards a copy of the model once
for the whole stage plan, and the trained weights are gathered back into the plain model, on which
rank 0 evaluates. Checkpoints hold full (unsharded) state dicts, written by rank 0 only.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from vlm_sweeps.data.samplers import micro_batches
from vlm_sweeps.models.vlm import IGNORE_INDEX

log = logging.getLogger(__name__)

MODES = ("auto", "none", "ddp", "fsdp")  # run.parallel; auto: fsdp with several processes, else none
# rank 0 may evaluate or talk to the tracking store for a long while; the others wait this long
CONTROL_TIMEOUT = timedelta(hours=12)
_sessions = itertools.count()  # a process may run several jobs: each session's keys in the store are its own


@dataclass(frozen=True)
class Env:
    """Where this process stands among the job's processes, read from the environment."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    source: str = "single"  # single | torchrun | slurm


def detect() -> Env:
    """torchrun's variables when set (they win inside a SLURM allocation too), else SLURM's when
    the job has several tasks (SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID, the job's first host as
    master), else one process."""
    environ = os.environ
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return Env(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)),
                   environ.get("MASTER_ADDR", "127.0.0.1"), int(environ.get("MASTER_PORT", 29500)), "torchrun")
    if "SLURM_PROCID" in environ and int(environ.get("SLURM_NTASKS", 1)) > 1:
        return _slurm()
    return Env()


def _slurm() -> Env:
    """Inside a submitit job its `TorchDistributedEnvironment` (the master port derived from the job
    id, so every task agrees on it); under a plain `srun`, the same variables read the same way."""
    from submitit.helpers import TorchDistributedEnvironment
    from submitit.slurm.slurm import SlurmJobEnvironment

    if os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        env = TorchDistributedEnvironment()
        return Env(env.rank, env.world_size, env.local_rank, env.master_addr, env.master_port, "slurm")
    job = SlurmJobEnvironment()
    port = os.environ.get("MASTER_PORT") or random.Random(job.job_id).randint(20000, 60000)  # submitit's rule
    return Env(job.global_rank, job.num_tasks, job.local_rank, job.hostnames[0], int(port), "slurm")


def resolve_mode(requested: str, world_size: int) -> str:
    """The mode a job trains in: `auto` is fsdp with several processes; any mode is `none` with one
    (a ddp/fsdp config runs unchanged on one process, e.g. when debugging locally)."""
    if world_size == 1:
        return "none"
    return "fsdp" if requested == "auto" else requested


def problems(requested: str, world_size: int, batch_sizes: Mapping[str, int]) -> list[str]:
    """Config problems of `run.parallel` for a job of `world_size` processes (validate.py)."""
    found = []
    if requested not in MODES:
        found.append(f"run.parallel={requested!r}; known: {', '.join(MODES)}")
    if world_size > 1 and requested == "none":
        found.append(f"run.parallel=none, but the job runs {world_size} processes (torchrun or SLURM tasks): each "
                     "would train the whole job; use run.parallel=auto|ddp|fsdp, or start a single process")
    if world_size > 1:
        for stage, size in batch_sizes.items():
            if size % world_size:
                found.append(f"scale.{stage}.batch_size={size} is not divisible by the job's {world_size} processes; "
                             f"use a multiple of {world_size} or another number of GPUs/tasks")
    return found


@dataclass
class StepShard:
    """This rank's share of one optimizer step: micro-batches of sample indices, of which the
    first `real` are its own and the rest blanks (see module doc); `samples`: the global batch size."""

    parts: list[list[int]]
    real: int
    samples: int


@dataclass
class Distributed:
    """The job's processes as the training code sees them; `Distributed()` is one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    mode: str = "none"  # none | ddp | fsdp (resolved)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control: Any = None  # gloo group with a long timeout, for objects and waiting on rank 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def grad_scale(self) -> int:
        """Multiplies the loss before backward: DDP and FSDP average gradients over ranks; we want
        their sum (each rank's loss is already normalised by the global target count)."""
        return self.world_size

    # -- control plane: python objects and waiting, never on the training path
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world_size == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier(group=self.control)

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. builds a shared cache), then the others."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    # -- data
    def shard(self, batch: list[int], micro: int | None) -> StepShard:
        """This rank's contiguous slice of `batch` (sizes differ by at most one), in micro-batches,
        padded with blanks to the largest rank's number of micro-batches."""
        if self.world_size == 1:
            return StepShard(micro_batches(batch, micro), len(micro_batches(batch, micro)), len(batch))
        base, extra = divmod(len(batch), self.world_size)
        start = self.rank * base + min(self.rank, extra)
        mine = batch[start:start + base + (self.rank < extra)]
        count = len(micro_batches(batch[:base + (extra > 0)], micro))  # rank 0's slice is the largest
        parts = micro_batches(mine, micro) if mine else []
        return StepShard(parts + [[batch[0]]] * (count - len(parts)), len(parts), len(batch))

    @staticmethod
    def blank(parts: list[dict], shard: StepShard) -> list[dict]:
        """The collated micro-batches of `shard` with the labels of its blanks all ignored."""
        return parts[:shard.real] + [{**p, "labels": [torch.full_like(lab, IGNORE_INDEX) for lab in p["labels"]]}
                                     for p in parts[shard.real:]]

    def all_sum(self, value: float) -> float:
        """The sum over ranks (a count or a loss); the value itself on one process."""
        if self.world_size == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device)
        torch.distributed.all_reduce(t)
        return t.item()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")

    # -- the model
    def prepare(self, model: nn.Module) -> nn.Module:
        """The module the stage plan trains. FSDP: a sharded copy (the plain `model` waits on the CPU
        for `finish`); otherwise `model` itself."""
        if self.mode != "fsdp":
            return model
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
        from transformers.modeling_layers import GradientCheckpointingLayer

        model.to("cpu")
        sharded = copy.deepcopy(model)
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        layers = [m for m in sharded.llm.modules() if isinstance(m, GradientCheckpointingLayer)]
        for layer in layers:  # decoder layers: gathered one at a time
            fully_shard(layer, mesh=mesh)
        fully_shard(sharded, mesh=mesh)  # the rest (vision, projector, embeddings, head) as one group
        log.info("FSDP over %d ranks: %d LLM decoder layers + root", self.world_size, len(layers))
        return sharded

    def wrap(self, model: nn.Module) -> nn.Module:
        """Per stage, after its parameters were (un)frozen: DDP over the parameters that train now
        (it ignores frozen ones). find_unused_parameters: a text-only batch leaves the projector and
        vision side unused (they stay without gradient, as with one process)."""
        if self.mode != "ddp":
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)

    def accumulating(self, model: nn.Module, last: bool):
        """Context of one micro-batch's forward and backward: DDP syncs gradients on the last one
        only. FSDP reduce-scatters every one, keeping only sharded gradients (memory over traffic)."""
        if self.mode == "ddp" and not last:
            return model.no_sync()
        return contextlib.nullcontext()

    def clip_grad_norm_(self, params: Sequence[nn.Parameter], max_norm: float) -> torch.Tensor:
        """Clip by the norm of the whole (unsharded) gradient."""
        if self.mode != "fsdp":
            return torch.nn.utils.clip_grad_norm_(params, max_norm)
        from torch.distributed.tensor import DTensor

        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        if isinstance(norm, DTensor):  # partial norms of the shards -> the global norm, on every rank
            norm = norm.full_tensor()
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
        return norm

    def model_state(self, model: nn.Module, parts: set[str] | None = None) -> dict[str, torch.Tensor]:
        """The full (unsharded) weights of `parts` (default: all) on the CPU; under FSDP gathered
        (every rank calls it) and held by rank 0 only."""
        from vlm_sweeps.train.checkpoint import select_parts, trained_state

        if self.mode != "fsdp":
            return trained_state(model, set(parts) if parts is not None else set(model.parts()))
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if parts is None else select_parts(state, set(parts))

    def optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """One process: `optimizer.state_dict()`. Several: the full state keyed by parameter name."""
        if self.world_size == 1:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Either format of `optimizer_state`, whatever the mode that wrote it."""
        by_name = any(isinstance(k, str) for g in state["param_groups"] for k in g["params"])
        if self.world_size == 1 or (self.mode == "ddp" and not by_name):
            optimizer.load_state_dict(_rekey(state, model, optimizer, to_names=False) if by_name else state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        state = state if by_name else _rekey(state, model, optimizer, to_names=True)
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    def finish(self, trained: nn.Module, model: nn.Module) -> None:
        """After the stage plan: the trained weights in the plain `model`, on rank 0's device."""
        if self.mode != "fsdp":
            return
        state = self.model_state(trained)
        if self.is_main:
            model.load_state_dict(state)
            model.to(self.device)


def _rekey(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, *, to_names: bool) -> dict:
    """Optimizer state keyed by parameter index <-> by parameter name, through the optimizer's order."""
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    mapping = dict(enumerate(order)) if to_names else {n: i for i, n in enumerate(order)}
    groups = [{**g, "params": [mapping[k] for k in g["params"]]} for g in state["param_groups"]]
    return {"state": {mapping[k]: v for k, v in state["state"].items()}, "param_groups": groups}


@contextlib.contextmanager
def session(parallel: str, device: torch.device) -> Iterator[Distributed]:
    """The job's process group for the duration of the block (none for one process): backend nccl
    on CUDA, gloo on CPU, one device per local rank; torn down at the end (unless it existed before)."""
    env = detect()
    mode = resolve_mode(parallel, env.world_size)
    if env.world_size == 1:
        if parallel in ("ddp", "fsdp"):
            log.info("run.parallel=%s with one process: training as run.parallel=none", parallel)
        yield Distributed(device=device)
        return
    dist = torch.distributed
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:  # under torchrun the store is its agent's; else rank 0 serves it on the master port
        store, _, _ = next(dist.rendezvous(f"tcp://{env.master_addr}:{env.master_port}", env.rank, env.world_size))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank,
                                world_size=env.world_size, store=dist.PrefixStore(f"vlm_sweeps/{next(_sessions)}/", store),
                                device_id=device if device.type == "cuda" else None)
    control = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    log.info("rank %d of %d (%s, from %s), %s", env.rank, env.world_size, mode, env.source, device)
    try:
        yield Distributed(env.rank, env.world_size, env.local_rank, mode, device, control)
    finally:
        dist.destroy_process_group(control)
        if owned:
            dist.destroy_process_group()
