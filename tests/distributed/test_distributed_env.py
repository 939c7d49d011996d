"""Without starting processes: who a process is (torchrun's or SLURM's variables), the checks of
`run.parallel`, how a batch is split over ranks, optimizer state under either key format."""

from __future__ import annotations

import random

import pytest
import torch

from tests.conftest import SMALL, compose
from vlm_sweeps import validate
from vlm_sweeps.models.vlm import IGNORE_INDEX
from vlm_sweeps.train.distributed import Distributed, _rekey, detect, resolve_mode

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SUBMITIT_EXECUTOR", "SLURM_JOB_ID",
             "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_NUM_NODES", "SLURM_JOB_NODELIST",
             "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")


@pytest.fixture()
def env(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


SLURM_TASK = {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1",
              "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu-[07-08]"}


@pytest.mark.parametrize("submitit", [True, False], ids=["submitit job", "plain srun"])
def test_slurm_tasks_find_their_rank_world_and_master(env, submitit):
    for name, value in SLURM_TASK.items():
        env.setenv(name, value)
    if submitit:
        env.setenv("SUBMITIT_EXECUTOR", "slurm")
    found = detect()
    assert (found.rank, found.world_size, found.local_rank, found.source) == (5, 8, 1, "slurm")
    assert found.master_addr == "gpu-07"  # the job's first node
    # every task derives the same port from the job id (submitit's rule), unless MASTER_PORT is set
    assert found.master_port == random.Random("4242").randint(20000, 60000)
    env.setenv("MASTER_PORT", "12345")
    assert detect().master_port == 12345


def test_torchrun_variables_win_and_one_task_is_one_process(env):
    assert detect().world_size == 1 and detect().source == "single"
    for name, value in {**SLURM_TASK, "SLURM_NTASKS": "1", "SLURM_PROCID": "0"}.items():
        env.setenv(name, value)
    assert detect().world_size == 1  # a SLURM job of one task: nothing to set up
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "node3",
                        "MASTER_PORT": "29400"}.items():
        env.setenv(name, value)
    found = detect()
    assert (found.rank, found.world_size, found.local_rank, found.master_addr, found.master_port, found.source) == (
        1, 2, 1, "node3", 29400, "torchrun")


def test_parallel_modes():
    assert resolve_mode("auto", 1) == resolve_mode("ddp", 1) == resolve_mode("fsdp", 1) == "none"
    assert resolve_mode("auto", 4) == "fsdp" and resolve_mode("ddp", 4) == "ddp"


def test_parallel_settings_are_checked_with_the_fix(tmp_path):
    cfg = compose(SMALL + ["run.parallel=zero"], root=tmp_path)
    assert any("run.parallel='zero'; known: auto, none, ddp, fsdp" in p for p in validate.problems(cfg))
    cfg = compose(SMALL + ["run.parallel=none"], root=tmp_path)
    assert not validate.problems(cfg)
    (problem,) = validate.problems(cfg, world_size=2)
    assert "run.parallel=none, but the job runs 2 processes" in problem and "run.parallel=auto|ddp|fsdp" in problem
    cfg = compose(SMALL + ["optimization=two_stage"], root=tmp_path)  # align batch 32, finetune 16
    assert not validate.problems(cfg, world_size=4)
    align, finetune = validate.problems(cfg, world_size=3)
    assert "scale.align.batch_size=32 is not divisible by the job's 3 processes" in align
    assert "scale.finetune.batch_size=16 is not divisible by the job's 3 processes" in finetune


@pytest.mark.parametrize("size, micro", [(16, None), (13, 3), (3, None), (1, None), (16, 3), (7, 2)])
def test_each_rank_takes_its_slice_and_every_rank_runs_as_many_micro_batches(size, micro):
    batch = list(range(100, 100 + size))
    shards = [Distributed(rank=r, world_size=2).shard(batch, micro) for r in (0, 1)]
    assert [i for s in shards for part in s.parts[:s.real] for i in part] == batch  # contiguous, each once
    assert len(shards[0].parts) == len(shards[1].parts)  # FSDP's collectives run in every pass
    assert all(s.samples == size for s in shards)
    assert abs(sum(map(len, shards[0].parts[:shards[0].real])) - sum(map(len, shards[1].parts[:shards[1].real]))) <= 1
    one = Distributed().shard(batch, micro)
    assert one.real == len(one.parts) and [i for part in one.parts for i in part] == batch


def test_blank_micro_batches_add_no_loss():
    part = {"input_ids": [torch.tensor([1, 2, 3])], "labels": [torch.tensor([-100, 2, 3])], "pixel_values": None}
    shard = Distributed(rank=1, world_size=2).shard([7], None)  # one sample: rank 1 has none of its own
    assert shard.real == 0 and shard.parts == [[7]]
    (blank,) = Distributed.blank([part], shard)
    assert (blank["labels"][0] == IGNORE_INDEX).all() and blank["input_ids"] is part["input_ids"]


def test_optimizer_state_converts_between_index_and_name_keys():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    model(torch.randn(2, 3)).sum().backward()
    optimizer.step()
    state = optimizer.state_dict()
    by_name = _rekey(state, model, optimizer, to_names=True)
    assert sorted(by_name["state"]) == ["1.bias", "1.weight"] and by_name["param_groups"][0]["params"] == [
        "1.weight", "1.bias"]
    back = _rekey(by_name, model, optimizer, to_names=False)
    assert back["param_groups"] == state["param_groups"] and back["state"].keys() == state["state"].keys()
    fresh = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    Distributed().load_optimizer_state(model, fresh, by_name)  # one process reads a multi-process checkpoint
    torch.testing.assert_close(fresh.state_dict()["state"][0]["exp_avg"], state["state"][0]["exp_avg"])
